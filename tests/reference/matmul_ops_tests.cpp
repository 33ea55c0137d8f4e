// Reference matmul: worked 2x3·3x2 products, transposes, batch broadcasting, accumulation.

#include "reference/ops_test_support.hpp"

namespace reference_matmul_ops_tests {

using namespace ops_test;

namespace {
// [[1,2,3],[4,5,6]] · [[7,8],[9,10],[11,12]] = [[58,64],[139,154]], worked by hand:
// 1·7+2·9+3·11 = 58, 1·8+2·10+3·12 = 64, 4·7+5·9+6·11 = 139, 4·8+5·10+6·12 = 154.
const std::vector<float> kA = {1, 2, 3, 4, 5, 6};      // [2, 3]
const std::vector<float> kAT = {1, 4, 2, 5, 3, 6};     // its transpose, [3, 2]
const std::vector<float> kB = {7, 8, 9, 10, 11, 12};   // [3, 2]
const std::vector<float> kBT = {7, 9, 11, 8, 10, 12};  // its transpose, [2, 3]
const std::vector<double> kProduct = {58, 64, 139, 154};

porta::Tensor matmul_of(const porta::Shape& as, const std::vector<float>& a, const porta::Shape& bs,
                        const std::vector<float>& b, porta::MatmulAttrs attrs) {
  porta::Graph g;
  auto x = g.input("a", as, porta::DType::F32);
  auto w = g.input("b", bs, porta::DType::F32);
  return run_single(g, g.matmul(x, w, attrs), {{"a", f32(as, a)}, {"b", f32(bs, b)}});
}
}  // namespace

TEST_CASE("matmul of a 2x3 and a 3x2 matrix", "[ops][matmul]") {
  const auto out = matmul_of({2, 3}, kA, {3, 2}, kB, {});
  CHECK(out.shape() == porta::Shape{2, 2});
  check_close(out.to_f32(), kProduct);
}

TEST_CASE("matmul with transposed operands gives the same product", "[ops][matmul]") {
  SECTION("transpose_b (nn.Linear layout)") {
    check_close(matmul_of({2, 3}, kA, {2, 3}, kBT, {.transpose_b = true}).to_f32(), kProduct);
  }
  SECTION("transpose_a") {
    check_close(matmul_of({3, 2}, kAT, {3, 2}, kB, {.transpose_a = true}).to_f32(), kProduct);
  }
  SECTION("both") {
    check_close(
        matmul_of({3, 2}, kAT, {2, 3}, kBT, {.transpose_a = true, .transpose_b = true}).to_f32(),
        kProduct);
  }
}

TEST_CASE("matmul broadcasts a rank-2 b over a's batch", "[ops][matmul]") {
  std::vector<float> a = kA;
  for (float v : kA) a.push_back(2 * v);  // batch 1 is twice batch 0
  const auto out = matmul_of({2, 2, 3}, a, {3, 2}, kB, {});
  CHECK(out.shape() == porta::Shape{2, 2, 2});
  check_close(out.to_f32(), {58, 64, 139, 154, 116, 128, 278, 308});
}

TEST_CASE("matmul broadcasts a rank-2 a over b's batch, transposed", "[ops][matmul]") {
  std::vector<float> b = kBT;
  for (float v : kBT) b.push_back(-v);  // batch 1 is minus batch 0
  const auto out = matmul_of({2, 3}, kA, {2, 2, 3}, b, {.transpose_b = true});
  CHECK(out.shape() == porta::Shape{2, 2, 2});
  check_close(out.to_f32(), {58, 64, 139, 154, -58, -64, -139, -154});
}

TEST_CASE("matmul broadcasts size-1 batch dimensions of both operands", "[ops][matmul]") {
  // a[2, 1, 1, 1] · b[3, 1, 1] -> [2, 3, 1, 1]: every a batch times every b batch.
  const auto out = matmul_of({2, 1, 1, 1}, {1, 2}, {3, 1, 1}, {10, 20, 30}, {});
  CHECK(out.shape() == porta::Shape{2, 3, 1, 1});
  check_close(out.to_f32(), {10, 20, 30, 20, 40, 60});
}

TEST_CASE("matmul accumulates in double", "[ops][matmul]") {
  // In f32, 1e8 + 1 rounds back to 1e8 and the sum comes out 0; a double accumulator keeps the 1.
  const auto out = matmul_of({1, 3}, {1e8f, 1.0f, -1e8f}, {3, 1}, {1, 1, 1}, {});
  check_close(out.to_f32(), {1.0}, 0.0);
}

TEST_CASE("matmul with an empty inner dimension is all zeros", "[ops][matmul]") {
  const auto out = matmul_of({2, 0}, {}, {0, 3}, {}, {});
  CHECK(out.shape() == porta::Shape{2, 3});
  check_close(out.to_f32(), {0, 0, 0, 0, 0, 0}, 0.0);
}

}  // namespace reference_matmul_ops_tests
