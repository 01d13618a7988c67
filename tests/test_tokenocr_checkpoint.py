"""Strict loading of official-format checkpoints: wrong, missing or extra keys and bad config fields fail
loudly, naming what is wrong."""

import json

import pytest
import torch

from tests.tokenocr_factory import make_tiny_checkpoint
from tokensearch.tokenocr_model.checkpoint import CheckpointError, weight_files
from tokensearch.tokenocr_model.tokenocr import load_model, load_tokenocr


def test_missing_key_is_named(tmp_path):
    d = make_tiny_checkpoint(tmp_path, state_dict_edit=lambda sd: sd.pop("vision_model.encoder.layers.1.ls2"))
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): vision_model\.encoder\.layers\.1\.ls2"):
        load_model(d)


def test_unexpected_key_is_named(tmp_path):
    def add(sd):
        sd["vision_model.encoder.layers.0.attn.q_norm.weight"] = torch.ones(32)
        sd["mlp_mt.0.weight"] = torch.ones(4)

    d = make_tiny_checkpoint(tmp_path, state_dict_edit=add)
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    msg = str(e.value)
    assert "unexpected keys (2)" in msg
    assert "vision_model.encoder.layers.0.attn.q_norm.weight" in msg and "mlp_mt.0.weight" in msg


def test_renamed_key_lists_both_sides(tmp_path):
    def rename(sd):
        sd["ocr_mlp.2.weight"] = sd.pop("ocr_mlp.3.weight")

    d = make_tiny_checkpoint(tmp_path, state_dict_edit=rename)
    with pytest.raises(CheckpointError, match=r"missing keys.*ocr_mlp\.3\.weight.*unexpected keys.*ocr_mlp\.2\.weight"):
        load_model(d)


def test_wrong_shape_is_named(tmp_path):
    def shrink(sd):
        sd["ocr_mlp.1.weight"] = torch.zeros(16, 30)

    d = make_tiny_checkpoint(tmp_path, state_dict_edit=shrink)
    with pytest.raises(CheckpointError, match=r"ocr_mlp\.1\.weight: checkpoint \(16, 30\) vs model \(16, 32\)"):
        load_model(d)


def test_partial_upsampler_is_refused(tmp_path):
    d = make_tiny_checkpoint(tmp_path, state_dict_edit=lambda sd: sd.pop("upsample.0.weight"))
    # without upsample.0.weight the folder reads as a no-upsample checkpoint: the rest of upsample.* is extra
    with pytest.raises(CheckpointError, match=r"unexpected keys.*upsample\.1\.weight"):
        load_model(d)


def test_training_only_keys_and_missing_bn_counters_are_tolerated(tmp_path):
    def edit(sd):
        sd.pop("upsample.1.num_batches_tracked")
        sd["mlp1.3.bias"] = torch.zeros(3)
        sd["language_model.model.norm.weight"] = torch.ones(3)

    model, _, _ = load_model(make_tiny_checkpoint(tmp_path, state_dict_edit=edit))
    assert model.upsample[1].num_batches_tracked == 0


def test_missing_token_table(tmp_path):
    d = make_tiny_checkpoint(tmp_path, state_dict_edit=lambda sd: sd.pop("tok_embeddings.weight"))
    with pytest.raises(CheckpointError, match="no token table.*tok_embeddings.weight"):
        load_model(d)


def test_token_table_must_match_config(tmp_path):
    d = make_tiny_checkpoint(tmp_path, config_edit=lambda c: c.update(vocab_size=c["vocab_size"] + 1))
    with pytest.raises(CheckpointError, match="tok_embeddings.weight.*vocab_size"):
        load_model(d)


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda c: c["vision_config"].pop("hidden_size"), "vision_config.hidden_size"),
        (lambda c: c["vision_config"].pop("layer_norm_eps"), "vision_config.layer_norm_eps"),
        (lambda c: c.pop("hidden_size"), "'hidden_size'"),
        (lambda c: c.pop("vocab_size"), "'vocab_size'"),
        (lambda c: c["vision_config"].update(num_attention_heads=0), "vision_config.num_attention_heads"),
        (lambda c: c["vision_config"].update(num_attention_heads=3), "vision_config.num_attention_heads"),
        (lambda c: c["vision_config"].update(layer_norm_eps=0.5), "vision_config.layer_norm_eps"),
        (lambda c: c["vision_config"].update(qkv_bias="yes"), "vision_config.qkv_bias"),
        (lambda c: c["vision_config"].update(norm_type="batch_norm"), "vision_config.norm_type"),
        (lambda c: c["vision_config"].update(hidden_act="relu"), "vision_config.hidden_act"),
        (lambda c: c["vision_config"].update(patch_size=15), "patch_size"),
        (lambda c: c.update(select_layer=7), "'select_layer'"),
        (lambda c: c.update(force_image_size=-1), "'force_image_size'"),
        (lambda c: c.pop("vision_config"), "'vision_config'"),
    ],
)
def test_bad_config_field_is_named(tmp_path, edit, field):
    d = make_tiny_checkpoint(tmp_path, config_edit=edit)
    with pytest.raises(CheckpointError, match="config.json") as e:
        load_model(d)
    assert field in str(e.value)


def test_llm_config_fallback_for_raw_configs(tmp_path):
    def move(c):
        c["llm_config"] = {"hidden_size": c.pop("hidden_size"), "vocab_size": c.pop("vocab_size")}

    model, table, _ = load_model(make_tiny_checkpoint(tmp_path, config_edit=move))
    assert model.cfg.hidden_size == table.shape[1]


def test_folder_problems_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        weight_files(tmp_path / "nope")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="pickle"):
        weight_files(tmp_path)
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(tmp_path)


def test_missing_shard_is_named(tmp_path):
    d = make_tiny_checkpoint(tmp_path, sharded=True)
    (d / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        load_model(d)


def test_tokenizer_larger_than_table_is_refused(tmp_path):
    d = make_tiny_checkpoint(tmp_path)
    added = json.loads((d / "added_tokens.json").read_text())
    added["<extra>"] = max(added.values()) + 5
    (d / "added_tokens.json").write_text(json.dumps(added))
    with pytest.raises(CheckpointError, match="tokenizer has"):
        load_tokenocr(d)


def test_bf16_checkpoint_loads_and_runs_fp32(tmp_path):
    d = make_tiny_checkpoint(tmp_path, dtype=torch.bfloat16)
    enc = load_tokenocr(d, dtype="float32")
    assert next(enc.model.parameters()).dtype == torch.float32
    assert enc.table.dtype == torch.bfloat16  # the token table stays in its stored dtype on CPU
