#include "common/digest.h"

#include <xxhash.h>

#include "fmt/format.h"

namespace sp {
namespace {
std::string to_hex(XXH128_hash_t h) { return fmt::format("{:016x}{:016x}", h.high64, h.low64); }
}  // namespace

std::string digest_hex(std::span<const uint8_t> bytes) {
  return to_hex(XXH3_128bits(bytes.data(), bytes.size()));
}

Digester::Digester() : state_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}
Digester::~Digester() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void Digester::update(std::span<const uint8_t> bytes) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), bytes.data(), bytes.size());
}
std::string Digester::hex() const {
  return to_hex(XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_)));
}

}  // namespace sp
