"""Stage 3 with the real ViT-S/16 and random weights (no download): shapes, loading, errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from generator.errors import ModelError  # noqa: E402
from generator.model.embed import load_embedder, pick_device, plan_model  # noqa: E402
from generator.model.vit import FEATURE_DIM, MODEL_NAME, create_model, download_pretrained  # noqa: E402

pytestmark = pytest.mark.model


def embedder_for(weights: str, seed: int = 0):
    return load_embedder(weights, plan_model(weights, "cpu", "fp32", seed), seed)


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(3, 224, 224, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def random_embedder():
    return embedder_for("random", seed=0)


@pytest.fixture(scope="module")
def reference(random_embedder, pixels) -> np.ndarray:
    return random_embedder(pixels)


def test_random_weights_give_finite_384d_cls_features(random_embedder, reference) -> None:
    assert reference.shape == (3, FEATURE_DIM)
    assert reference.dtype == np.float32
    assert np.isfinite(reference).all()
    assert not np.allclose(reference[0], reference[1])  # different images, different features
    info = random_embedder.info
    assert (info.name, info.random_weights, info.device) == (MODEL_NAME, True, "cpu")
    assert info.weights == "random (untrained, seed 0)"


def test_random_weights_are_reproducible_and_batch_independent(pixels, reference) -> None:
    again = embedder_for("random", seed=0)
    # one image alone gives the very bits it got inside the batch of three
    np.testing.assert_array_equal(again(pixels[:1]), reference[:1])
    np.testing.assert_array_equal(again(pixels[::-1])[::-1], reference)
    other = embedder_for("random", seed=1)
    assert not np.allclose(other(pixels), reference)


def _seed0_state() -> dict:
    model = create_model("random", seed=0)
    return model.state_dict()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_checkpoint_gives_identical_features(tmp_path, pixels, reference, suffix) -> None:
    path = tmp_path / f"vit{suffix}"
    state = _seed0_state()
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    embedder = embedder_for(str(path), seed=123)  # seed must not matter now
    np.testing.assert_array_equal(embedder(pixels), reference)
    assert embedder.info.random_weights is False
    assert embedder.info.weights.startswith(f"checkpoint vit{suffix} (sha256 ")
    assert str(tmp_path) not in embedder.info.weights  # no absolute path in the report


def test_facebook_style_training_checkpoint_loads(tmp_path, pixels, reference) -> None:
    """DINO's own checkpoints nest the ViT under 'teacher' with a 'backbone.' prefix and a head."""
    state = {f"backbone.{k}": v for k, v in _seed0_state().items()}
    state["head.mlp.0.weight"] = torch.zeros(8, 384)
    path = tmp_path / "dino_checkpoint.pth"
    torch.save({"teacher": state, "epoch": 100}, path)
    np.testing.assert_array_equal(embedder_for(str(path))(pixels), reference)


def test_missing_checkpoint_names_the_file(tmp_path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(ModelError, match=r"nope\.pth: checkpoint file not found"):
        embedder_for(str(path))


def test_garbage_checkpoint_names_the_file(tmp_path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("this is not a checkpoint")
    with pytest.raises(ModelError, match=r"notes\.pth: not a readable"):
        embedder_for(str(path))


def test_wrong_architecture_is_refused(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ModelError, match=r"other\.pth: not a ViT-S/16 checkpoint"):
        embedder_for(str(path))


def test_unreachable_hub_fails_fast_and_names_the_remedy(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # closed port: refused at once
    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    start = time.monotonic()
    with pytest.raises(ModelError, match=r"--weights PATH"):
        download_pretrained()
    assert time.monotonic() - start < 15  # seconds, not a minute of retries


def test_unavailable_device_is_an_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match="--device cuda was requested but is not available"):
        pick_device("cuda")
    assert pick_device("auto") in ("cpu", "mps")


def test_mps_off_apple_silicon_is_refused_when_planned(monkeypatch) -> None:
    """Before any image is decoded (pick_device, at load time, said it after decoding began)."""
    import generator.model.embed as embed

    monkeypatch.setattr(embed, "_apple_silicon", lambda: False)
    with pytest.raises(ModelError) as raised:
        plan_model("random", "mps", "fp32")
    assert str(raised.value) == (
        "--device mps was requested but is not available here (MPS is Apple silicon's); use "
        "--device auto or --device cpu."
    )
    monkeypatch.setattr(embed, "_apple_silicon", lambda: True)
    assert plan_model("random", "mps", "fp32").device == "mps"


def test_bf16_features_match_fp32_on_real_images() -> None:
    from generator.api import DEMO_IMAGES
    from generator.ingest.imaging import decode

    files = sorted(DEMO_IMAGES.rglob("*.png"))[::3]
    pixels = np.stack([decode(f, 224, 64).pixels for f in files])
    fp32 = load_embedder("random", plan_model("random", "cpu", "fp32"))(pixels)
    bf16_embedder = load_embedder("random", plan_model("random", "cpu", "bf16"))
    assert bf16_embedder.info.precision == "bf16"
    bf16 = bf16_embedder(pixels)
    assert bf16.dtype == np.float32
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() >= 0.999, cosine


@pytest.mark.parametrize(
    ("requested", "device", "bf16_cpu", "expected"),
    [
        ("auto", "cpu", True, "bf16"),
        ("auto", "cpu", False, "fp32"),
        ("auto", "cuda", False, "bf16"),
        ("auto", "mps", False, "fp16"),
        ("fp32", "cuda", True, "fp32"),
        ("fp16", "cpu", False, "fp16"),
    ],
)
def test_precision_auto_follows_the_hardware(monkeypatch, requested, device, bf16_cpu, expected):
    import generator.model.embed as embed

    monkeypatch.setattr(embed, "cpu_has_bf16", lambda: bf16_cpu)
    assert embed.resolve_precision(requested, device) == expected


def test_plan_model_needs_no_torch_and_names_missing_checkpoints(tmp_path) -> None:
    plan = plan_model("pretrained", "cpu", "fp32")
    assert (plan.weights, plan.weights_id) == (
        "pretrained DINO (timm/vit_small_patch16_224.dino)",
        "hub:timm/vit_small_patch16_224.dino",
    )
    import timm

    assert timm.models.get_pretrained_cfg(MODEL_NAME).hf_hub_id.rstrip("/") == (
        "timm/vit_small_patch16_224.dino"
    )
    with pytest.raises(ModelError, match=r"missing\.pth: checkpoint file not found"):
        plan_model(str(tmp_path / "missing.pth"), "cpu", "fp32")
