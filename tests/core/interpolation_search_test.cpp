// detail::interpolation_lower_bound against std::lower_bound: dense keys, keys with holes
// of every shape (random, clustered, one huge gap), boundaries and absent keys.
#include <vfolder/detail/interpolation_search.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using keys = std::vector<std::uint32_t>;

std::size_t ilb(keys const& v, std::uint64_t k) {
    auto it = vfolder::detail::interpolation_lower_bound(v.begin(), v.end(), k, [](std::uint32_t x) { return x; });
    return static_cast<std::size_t>(it - v.begin());
}
std::size_t slb(keys const& v, std::uint64_t k) {
    return static_cast<std::size_t>(std::partition_point(v.begin(), v.end(), [&](std::uint32_t x) { return x < k; }) -
                                    v.begin());
}

// Every key of `v`, its neighbours, and the ends.
void check_all(keys const& v) {
    std::vector<std::uint64_t> probes{0, 1, 0xffffffffull, 0x100000000ull};
    for (auto x : v) {
        probes.push_back(x);
        probes.push_back(x + 1ull);
        if (x > 0) probes.push_back(x - 1ull);
    }
    for (auto k : probes) {
        CAPTURE(k);
        REQUIRE(ilb(v, k) == slb(v, k));
    }
}

} // namespace

TEST_CASE("interpolation_lower_bound: empty, one, small and dense ranges") {
    check_all({});
    check_all({7});
    check_all({1, 2, 3});
    keys dense(1000);
    for (std::uint32_t i = 0; i < dense.size(); ++i) dense[i] = 100 + i;
    check_all(dense);
}

TEST_CASE("interpolation_lower_bound: keys at the ends of the 32-bit range") {
    check_all({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xfffffff0u, 0xfffffffeu, 0xffffffffu});
    keys v;
    for (std::uint32_t i = 0; i < 50; ++i) v.push_back(i);
    for (std::uint32_t i = 0; i < 50; ++i) v.push_back(0xffffffffu - 49 + i);
    check_all(v);
}

TEST_CASE("interpolation_lower_bound: random holes, clusters and skew agree with lower_bound") {
    std::mt19937 gen(12345);
    auto rng = [&] { return static_cast<std::uint32_t>(gen()); };
    for (int run = 0; run < 300; ++run) {
        CAPTURE(run);
        keys v;
        std::uint32_t x = rng() % 1000;
        auto const n = 1 + rng() % 2000;
        int const shape = run % 3;
        for (std::uint32_t i = 0; i < n; ++i) {
            v.push_back(x);
            std::uint32_t step = 1;
            if (shape == 0) step = 1 + rng() % 5;                       // evenly spread holes
            else if (shape == 1) step = rng() % 50 == 0 ? 1 + rng() % 100000 : 1; // clusters
            else step = i < n / 2 ? 1 : 1 + static_cast<std::uint32_t>(i) * 97; // skewed: growing gaps
            if (x > 0xffffffffu - step) break;
            x += step;
        }
        check_all(v);
    }
}
