// The bitsandbytes serialization: key set, dtypes and shapes (nf4-format.md §7), the
// quant_state JSON, and quantization_config (§8).
#include "formats/bnb_format.h"

#include "gtest/gtest.h"

namespace sp {
namespace {

TEST(BnbFormat, SpecsMatchTheSection7Example) {
  // "double quant, bs 64, 4096x11008: weight [22544384, 1] u8, absmax [704512] u8,
  //  nested_absmax [2752] f32"
  const auto s = nf4_weight_specs("model.layers.0.mlp.down_proj.weight", 4096, 11008, 64, true, 100);
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(s[0].name, "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(s[0].dtype, DType::kU8);
  EXPECT_EQ(s[0].shape, (std::vector<int64_t>{22544384, 1}));
  EXPECT_EQ(s[1].name, "model.layers.0.mlp.down_proj.weight.absmax");
  EXPECT_EQ(s[1].dtype, DType::kU8);
  EXPECT_EQ(s[1].shape, (std::vector<int64_t>{704512}));
  EXPECT_EQ(s[2].name, "model.layers.0.mlp.down_proj.weight.quant_map");
  EXPECT_EQ(s[2].shape, (std::vector<int64_t>{16}));
  EXPECT_EQ(s[3].name, "model.layers.0.mlp.down_proj.weight.nested_absmax");
  EXPECT_EQ(s[3].dtype, DType::kF32);
  EXPECT_EQ(s[3].shape, (std::vector<int64_t>{2752}));
  EXPECT_EQ(s[4].name, "model.layers.0.mlp.down_proj.weight.nested_quant_map");
  EXPECT_EQ(s[4].shape, (std::vector<int64_t>{256}));
  EXPECT_EQ(s[5].name, "model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__nf4");
  EXPECT_EQ(s[5].shape, (std::vector<int64_t>{100}));

  const auto plain = nf4_weight_specs("w.weight", 3, 77, 64, false, 10);
  ASSERT_EQ(plain.size(), 4u);
  EXPECT_EQ(plain[0].shape, (std::vector<int64_t>{116, 1}));  // (231 + 1) / 2
  EXPECT_EQ(plain[1].dtype, DType::kF32);
  EXPECT_EQ(plain[1].shape, (std::vector<int64_t>{4}));
}

TEST(BnbFormat, QuantStateJson) {
  EXPECT_EQ(quant_state_json(64, DType::kBF16, 4096, 11008, 0.0123f),
            R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 11008], )"
            R"("nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.012299999594688416})");
  EXPECT_EQ(quant_state_json(128, DType::kF16, 2, 3, std::nullopt),
            R"({"quant_type": "nf4", "blocksize": 128, "dtype": "float16", "shape": [2, 3]})");
}

TEST(BnbFormat, ParseQuantStateRejectsNonCanonicalBytes) {
  auto ok = parse_quant_state_json(quant_state_json(64, DType::kF32, 5, 7, 0.5f));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->double_quant);
  EXPECT_EQ(ok->nested_offset, 0.5f);
  EXPECT_EQ(ok->dtype, DType::kF32);
  // Same values, compact separators: a loader would accept it, but we never write it,
  // so it means the bytes were altered.
  auto compact = parse_quant_state_json(R"({"quant_type":"nf4","blocksize":64,"dtype":"float32","shape":[5,7]})");
  EXPECT_FALSE(compact.ok());
  auto reordered = parse_quant_state_json(R"({"blocksize": 64, "quant_type": "nf4", "dtype": "float32", "shape": [5, 7]})");
  ASSERT_FALSE(reordered.ok());
  EXPECT_NE(std::string(reordered.status().message()).find("keys are [blocksize, quant_type"), std::string::npos);
  auto fp4 = parse_quant_state_json(R"({"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [5, 7]})");
  ASSERT_TRUE(fp4.ok()) << fp4.status();
  EXPECT_EQ(fp4->quant_type, BnbType::kFp4);
  EXPECT_EQ(quant_state_json(64, DType::kF32, 5, 7, std::nullopt, BnbType::kFp4),
            R"({"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [5, 7]})");
  EXPECT_EQ(nf4_weight_specs("w.weight", 3, 77, 64, false, 10, BnbType::kFp4).back().name,
            "w.weight.quant_state.bitsandbytes__fp4");
  Nf4Settings f;
  f.quant_type = BnbType::kFp4;
  EXPECT_EQ(bnb_quantization_config(f)["bnb_4bit_quant_type"], "fp4");
  auto int4 = parse_quant_state_json(R"({"quant_type": "int4", "blocksize": 64, "dtype": "float32", "shape": [5, 7]})");
  EXPECT_NE(int4.status().message().find("expected \"nf4\" or \"fp4\""), std::string::npos) << int4.status();
  // A shape no weight has (rows * cols would overflow): refused before anything is sized by it.
  for (const char* shape : {"[4294967296, 4294967296]", "[18446744073709551615, 1]", "[1, 9223372036854775808]"}) {
    auto huge = parse_quant_state_json(std::string(R"({"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": )") +
                                       shape + "}");
    EXPECT_TRUE(absl::IsDataLoss(huge.status())) << shape << ": " << huge.status();
  }
}

TEST(BnbFormat, QuantizationConfig) {
  const auto q = bnb_quantization_config(Nf4Settings{});
  EXPECT_EQ(q.dump(),
            R"({"_load_in_4bit":true,"_load_in_8bit":false,"bnb_4bit_compute_dtype":"bfloat16",)"
            R"("bnb_4bit_quant_storage":"uint8","bnb_4bit_quant_type":"nf4","bnb_4bit_use_double_quant":true,)"
            R"("llm_int8_enable_fp32_cpu_offload":false,"llm_int8_has_fp16_weight":false,)"
            R"("llm_int8_skip_modules":["lm_head"],"llm_int8_threshold":6.0,"load_in_4bit":true,)"
            R"("load_in_8bit":false,"quant_method":"bitsandbytes"})");
  const auto f16 = bnb_quantization_config(Nf4Settings{64, false, DType::kF16});
  EXPECT_EQ(f16["bnb_4bit_compute_dtype"], "float16");
  EXPECT_EQ(f16["bnb_4bit_use_double_quant"], false);
}

}  // namespace
}  // namespace sp
