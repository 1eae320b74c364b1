// Content digests: XXH3-128, written as 32 lowercase hex digits. Used to address blobs
// and to check that bytes were not altered (not a cryptographic guarantee).
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace sp {

std::string digest_hex(std::span<const uint8_t> bytes);

// Incremental form, for data that arrives in pieces.
class Digester {
 public:
  Digester();
  ~Digester();
  Digester(const Digester&) = delete;
  Digester& operator=(const Digester&) = delete;
  void update(std::span<const uint8_t> bytes);
  std::string hex() const;

 private:
  void* state_;
};

}  // namespace sp
