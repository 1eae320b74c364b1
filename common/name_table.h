// Names of enum values, in one table per enum next to the enum: the spec's words, the
// CLI's choices and error messages all read the same table.
//
//   constexpr NameRow<PruneScope> kPruneScopeNames[] = {{PruneScope::kRow, "row"}, ...};
//   name_of(kPruneScopeNames, PruneScope::kRow) == "row"
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sp {

template <typename E>
struct NameRow {
  E value;
  std::string_view name;
};

template <typename E, size_t N>
constexpr std::string_view name_of(const NameRow<E> (&table)[N], E value) {
  for (const auto& row : table)
    if (row.value == value) return row.name;
  return "?";
}

template <typename E, size_t N>
constexpr std::optional<E> value_of(const NameRow<E> (&table)[N], std::string_view name) {
  for (const auto& row : table)
    if (row.name == name) return row.value;
  return std::nullopt;
}

// "a, b or c" (for "expected a, b or c").
template <typename E, size_t N>
std::string names_of(const NameRow<E> (&table)[N]) {
  std::string out;
  for (size_t i = 0; i < N; ++i) {
    if (i > 0) out += i + 1 == N ? " or " : ", ";
    out += table[i].name;
  }
  return out;
}

}  // namespace sp
