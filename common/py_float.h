// Python's repr() of a float (shortest digits that round-trip; scientific notation when
// the decimal exponent is < -4 or >= 16), as json.dumps writes floats. bitsandbytes
// stores nested_offset this way in the quant_state JSON; we must produce the same bytes.
#pragma once

#include <string>

namespace sp {

// repr(float(x)) for finite x; "NaN"/"Infinity"/"-Infinity" as json.dumps writes them.
std::string python_float_repr(double x);

}  // namespace sp
