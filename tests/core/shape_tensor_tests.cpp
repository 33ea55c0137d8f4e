// Shape and Tensor: element counts, strides, axes, reshape, conversions and memory sharing.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/tensor.hpp>

#include "core/error_check.hpp"

namespace core_shape_tensor_tests {

using porta::DType;
using porta::ErrorCode;
using porta::Shape;
using porta::Tensor;

TEST_CASE("Shape counts elements and computes row-major strides", "[unit][shape]") {
  const Shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s.numel() == 24);
  CHECK(s.strides() == std::vector<std::int64_t>{12, 4, 1});
  CHECK(s[0] == 2);
  CHECK(s[-1] == 4);
  CHECK(s[-3] == 2);
  CHECK(s.to_string() == "[2, 3, 4]");

  const Shape scalar{};
  CHECK(scalar.rank() == 0);
  CHECK(scalar.numel() == 1);
  CHECK(scalar.strides().empty());
  CHECK(scalar.to_string() == "[]");

  const Shape empty{3, 0, 5};
  CHECK(empty.numel() == 0);
  CHECK(empty.strides() == std::vector<std::int64_t>{0, 5, 1});

  Shape mutable_shape{7, 8};
  mutable_shape[-1] = 9;
  CHECK(mutable_shape == Shape{7, 9});
  CHECK(Shape(std::vector<std::int64_t>{5}).strides() == std::vector<std::int64_t>{1});
}

TEST_CASE("Shape::normalize_axis maps negative axes and rejects out-of-range ones",
          "[unit][shape]") {
  const Shape s{2, 3, 4};
  CHECK(s.normalize_axis(0) == 0);
  CHECK(s.normalize_axis(2) == 2);
  CHECK(s.normalize_axis(-1) == 2);
  CHECK(s.normalize_axis(-3) == 0);
  REQUIRE_PORTA_ERROR(s.normalize_axis(3), ErrorCode::InvalidArgument, "3", "[2, 3, 4]");
  REQUIRE_PORTA_ERROR(s.normalize_axis(-4), ErrorCode::InvalidArgument, "-4", "[2, 3, 4]");
  REQUIRE_PORTA_ERROR(s[5], ErrorCode::InvalidArgument, "5");
  REQUIRE_PORTA_ERROR(Shape{}.normalize_axis(0), ErrorCode::InvalidArgument, "[]");
}

TEST_CASE("Tensor::zeros is zero-filled, aligned and sized", "[unit][tensor]") {
  const Tensor t = Tensor::zeros({3, 5}, DType::F16);
  CHECK(t.defined());
  CHECK(t.numel() == 15);
  CHECK(t.nbytes() == 30);
  CHECK(t.dtype() == DType::F16);
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  const auto* bytes = static_cast<const unsigned char*>(t.data());
  for (std::size_t i = 0; i < t.nbytes(); ++i) CHECK(bytes[i] == 0);
  CHECK(t.description() == "f16[3, 5]");
  REQUIRE_PORTA_ERROR(Tensor::zeros({2, -1}, DType::F32), ErrorCode::InvalidArgument, "[2, -1]");
  CHECK_FALSE(Tensor().defined());
  CHECK(Tensor::zeros({0, 4}, DType::F32).defined());
}

TEST_CASE("Tensor::from_f32 rounds into the target dtype and checks the count", "[unit][tensor]") {
  const std::vector<float> values = {1.0f, -2.0f, 65520.0f, 0.1f};
  const Tensor half = Tensor::from_f32({2, 2}, DType::F16, values);
  const auto* bits = half.data_as<porta::Half>();
  CHECK(bits[0].bits == 0x3c00u);
  CHECK(bits[1].bits == 0xc000u);
  CHECK(bits[2].bits == 0x7c00u);  // overflow to infinity
  CHECK(bits[3].bits == 0x2e66u);  // 0.1 -> 0.0999755859375
  CHECK(half.at_f32(3) == 0.0999755859375f);

  const Tensor ints =
      Tensor::from_f32({4}, DType::I32, std::vector<float>{0.5f, 1.5f, -2.5f, 1e10f});
  CHECK(std::vector<std::int32_t>(ints.data_as<std::int32_t>(), ints.data_as<std::int32_t>() + 4) ==
        std::vector<std::int32_t>{0, 2, -2, 2147483647});

  REQUIRE_PORTA_ERROR(Tensor::from_f32({2, 3}, DType::F32, values), ErrorCode::ShapeMismatch,
                      "[2, 3]", "4");
}

TEST_CASE("Tensor::to converts into a new tensor; to_f32 widens", "[unit][tensor]") {
  const Tensor source = Tensor::from_vector<float>({3}, {1.5f, 2.5f, -0.75f});
  const Tensor as_bf16 = source.to(DType::BF16);
  CHECK(as_bf16.dtype() == DType::BF16);
  CHECK(as_bf16.shape() == Shape{3});
  CHECK(as_bf16.data() != source.data());
  CHECK(as_bf16.to_f32() == std::vector<float>{1.5f, 2.5f, -0.75f});
  const Tensor as_i8 = source.to(DType::I8);
  CHECK(as_i8.to_f32() == std::vector<float>{2.0f, 2.0f, -1.0f});
  // Converting does not touch the source.
  source.data_as<float>()[0] = 9.0f;
  CHECK(as_bf16.at_f32(0) == 1.5f);
}

TEST_CASE("Tensor copies share memory; clone is deep", "[unit][tensor]") {
  Tensor original = Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4});
  Tensor copy = original;
  Tensor deep = original.clone();
  CHECK(copy.data() == original.data());
  CHECK(deep.data() != original.data());
  CHECK(deep.shape() == original.shape());
  CHECK(deep.dtype() == original.dtype());

  copy.data_as<float>()[1] = 20.0f;
  CHECK(original.at_f32(1) == 20.0f);  // shared
  CHECK(deep.at_f32(1) == 2.0f);       // independent
  deep.data_as<float>()[0] = -1.0f;
  CHECK(original.at_f32(0) == 1.0f);

  // A copy keeps the memory alive after the original is gone.
  Tensor survivor;
  {
    Tensor temporary = Tensor::from_vector<float>({1}, {42.0f});
    survivor = temporary;
  }
  CHECK(survivor.at_f32(0) == 42.0f);

  const Tensor empty_clone = Tensor::zeros({0, 3}, DType::F32).clone();
  CHECK(empty_clone.numel() == 0);
  CHECK(empty_clone.shape() == Shape{0, 3});
}

TEST_CASE("Tensor::reshape infers -1, shares memory and rejects wrong counts", "[unit][tensor]") {
  const Tensor t = Tensor::zeros({2, 3, 4}, DType::F32);
  const Tensor r = t.reshape({-1, 4});
  CHECK(r.shape() == Shape{6, 4});
  CHECK(r.data() == t.data());
  CHECK(t.reshape({4, -1, 3}).shape() == Shape{4, 2, 3});
  CHECK(t.reshape({24}).shape() == Shape{24});
  CHECK(t.reshape({2, 3, 4, 1}).shape() == Shape{2, 3, 4, 1});
  CHECK(Tensor::zeros({0, 3}, DType::F32).reshape({-1, 3}).shape() == Shape{0, 3});

  REQUIRE_PORTA_ERROR(t.reshape({5, 5}), ErrorCode::ShapeMismatch, "[2, 3, 4]", "[5, 5]");
  REQUIRE_PORTA_ERROR(t.reshape({5, -1}), ErrorCode::ShapeMismatch, "[2, 3, 4]", "[5, -1]");
  REQUIRE_PORTA_ERROR(t.reshape({-1, -1}), ErrorCode::InvalidArgument, "[-1, -1]");
  REQUIRE_PORTA_ERROR(t.reshape({-2, 12}), ErrorCode::InvalidArgument, "[-2, 12]");
  REQUIRE_PORTA_ERROR(t.reshape({0, -1}), ErrorCode::ShapeMismatch, "[0, -1]");
}

TEST_CASE("Tensor::data_as checks the element type", "[unit][tensor]") {
  const Tensor t = Tensor::zeros({2}, DType::I32);
  CHECK(t.data_as<std::int32_t>() == t.data());
  REQUIRE_PORTA_ERROR(t.data_as<float>(), ErrorCode::DTypeMismatch, "i32", "f32");
  REQUIRE_PORTA_ERROR(t.data_as<std::int64_t>(), ErrorCode::DTypeMismatch, "i64");
  REQUIRE_PORTA_ERROR(Tensor::zeros({1}, DType::BF16).data_as<porta::Half>(),
                      ErrorCode::DTypeMismatch, "bf16", "f16");
  REQUIRE_PORTA_ERROR(t.at_f32(2), ErrorCode::InvalidArgument, "2");
  REQUIRE_PORTA_ERROR(t.at_f32(-1), ErrorCode::InvalidArgument, "-1");
}

TEST_CASE("Tensor::copy_of and view", "[unit][tensor]") {
  std::vector<std::int64_t> storage = {5, 6, 7};
  const Tensor owned = Tensor::copy_of({3}, DType::I64, storage.data(), 24);
  storage[0] = 50;
  CHECK(owned.at_f32(0) == 5.0f);
  REQUIRE_PORTA_ERROR(Tensor::copy_of({3}, DType::I64, storage.data(), 16),
                      ErrorCode::ShapeMismatch, "16", "24");

  const Tensor view = Tensor::view(storage.data(), {3}, DType::I64);
  CHECK(view.data() == storage.data());
  storage[2] = 70;
  CHECK(view.at_f32(2) == 70.0f);
  REQUIRE_PORTA_ERROR(Tensor::view(nullptr, {3}, DType::F32), ErrorCode::InvalidArgument, "[3]");

  // A view with an owner keeps the owner alive.
  std::weak_ptr<std::vector<float>> watch;
  Tensor kept;
  {
    auto block = std::make_shared<std::vector<float>>(std::vector<float>{3.0f, 4.0f});
    watch = block;
    kept = Tensor::view(block->data(), {2}, DType::F32, block);
  }
  CHECK_FALSE(watch.expired());
  CHECK(kept.at_f32(1) == 4.0f);
  kept = Tensor();
  CHECK(watch.expired());
}

// Empty tensors are valid (an MoE layer with no tokens); their data may be null, and no
// conversion may hand a null pointer to memcpy (UBSan checks this in the sanitizer build).
TEST_CASE("empty tensors convert, clone and widen", "[unit][tensor]") {
  const Tensor empty = Tensor::zeros({0, 3}, DType::F32);
  CHECK(empty.to(DType::BF16).shape() == Shape{0, 3});
  CHECK(empty.clone().numel() == 0);
  const Tensor null_view = Tensor::view(nullptr, {0}, DType::F32);
  CHECK(null_view.clone().numel() == 0);
  CHECK(null_view.to(DType::F16).numel() == 0);
  CHECK(empty.to_f32().empty());
  CHECK(null_view.to(DType::F32).numel() == 0);
}

}  // namespace core_shape_tensor_tests
