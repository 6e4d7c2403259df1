#include <doctest/doctest.h>
TEST_CASE("precondition: placeholder") { CHECK(true); }
