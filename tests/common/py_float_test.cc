#include "common/py_float.h"

#include "gtest/gtest.h"

namespace sp {
namespace {

// Expected strings are what CPython's repr() prints.
TEST(PyFloat, MatchesPythonRepr) {
  EXPECT_EQ(python_float_repr(static_cast<double>(0.0123f)), "0.012299999594688416");
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(6.0), "6.0");
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(1.5e-07), "1.5e-07");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(python_float_repr(-2.5), "-2.5");
  EXPECT_EQ(python_float_repr(0.0), "0.0");
  EXPECT_EQ(python_float_repr(static_cast<double>(0.02f)), "0.019999999552965164");
}

}  // namespace
}  // namespace sp
