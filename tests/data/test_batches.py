"""Training batches: sample names, one-stream batches, flipped extra targets, mixed image sizes."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from depthlab.data import augment
from depthlab.data.augment import flip_normals, flip_width, hflip, register_flip
from depthlab.data.batch import Batch, LabelledBatch, UnlabelledBatch
from depthlab.data.mixing import MixedBatches, split_batch
from depthlab.errors import UserError
from depthlab.models.backbone import small_backbone

from fiffdepth_helpers import make_recipe, separate_pass_terms

# A hand-built 3x2x3 normal map (channels x, y, z; two rows; three columns), distinct values.
NORMALS = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
                        [[7.0, 8.0, 9.0], [10.0, 11.0, 12.0]],
                        [[13.0, 14.0, 15.0], [16.0, 17.0, 18.0]]])
# The same map mirrored left-right with its x channel negated, written out by hand.
FLIPPED_NORMALS = torch.tensor([[[-3.0, -2.0, -1.0], [-6.0, -5.0, -4.0]],
                                [[9.0, 8.0, 7.0], [12.0, 11.0, 10.0]],
                                [[15.0, 14.0, 13.0], [18.0, 17.0, 16.0]]])
DEPTH = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
FLIPPED_DEPTH = torch.tensor([[[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]]])
VALID = torch.tensor([[[True, False, False], [True, True, False]]])
FLIPPED_VALID = torch.tensor([[[False, False, True], [False, True, True]]])
RGB = torch.arange(18, dtype=torch.float32).reshape(3, 2, 3) / 17.0


class Indexed(Dataset):
    """Item `i` is filled with i / 100, so a batch row tells which item it came from."""

    def __init__(self, prefix: str, length: int = 9, labelled: bool = True, size: int = 4,
                 with_name: bool = True):
        self.prefix, self.length, self.labelled = prefix, length, labelled
        self.size, self.with_name = size, with_name

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        item = {"rgb": torch.full((3, self.size, self.size), index / 100.0)}
        if self.labelled:
            item["depth"] = torch.full((1, self.size, self.size), index + 1.0)
            item["valid"] = torch.ones(1, self.size, self.size, dtype=torch.bool)
        if self.with_name:
            item["name"] = f"{self.prefix}-{index}"
        return item


class WithNormals(Dataset):
    """One sample holding the hand-built maps; `normals=False` leaves the normals out."""

    def __init__(self, normals: bool = True, **extra):
        self.normals, self.extra = normals, extra

    def __len__(self):
        return 1

    def __getitem__(self, index):
        item = {"rgb": RGB.clone(), "depth": DEPTH.clone(), "valid": VALID.clone(),
                "name": "scene-7/frame-0042"}
        if self.normals:
            item["normals"] = NORMALS.clone()
        item.update({k: v.clone() for k, v in self.extra.items()})
        return item


def row_indices(rgb: torch.Tensor) -> list[int]:
    return [round(float(row[0, 0, 0]) * 100) for row in rgb]


# --- names -----------------------------------------------------------------------------------

def test_both_streams_keep_the_names_of_the_drawn_items():
    batches = MixedBatches(labelled=[Indexed("synth")], unlabelled=Indexed("photo", labelled=False),
                           batch_size=8, labelled_fraction=0.5, seed=4)
    for step in (0, 1, 13):
        batch = batches[step]
        assert batch.labelled.names == tuple(f"synth-{i}"
                                             for i in row_indices(batch.labelled.rgb))
        assert batch.unlabelled.names == tuple(f"photo-{i}"
                                               for i in row_indices(batch.unlabelled.rgb))
        assert len(batch.labelled.names) == 4 and len(batch.unlabelled.names) == 4
        # depth rows come from the same items as the rgb rows
        depth_indices = [int(d[0, 0, 0]) - 1 for d in batch.labelled.depth]
        assert depth_indices == row_indices(batch.labelled.rgb)
    assert batches[5].labelled.names == batches[5].labelled.names  # a pure function of step
    assert len({batches[s].labelled.names for s in range(6)}) > 1  # and steps differ


def test_items_without_a_name_are_named_after_their_dataset_and_index():
    batch = MixedBatches(labelled=[Indexed("x", with_name=False)], batch_size=3, seed=1)[0]
    assert batch.labelled.names == tuple(f"Indexed[{i}]" for i in row_indices(batch.labelled.rgb))


# --- one stream fills the batch ----------------------------------------------------------------

def test_labelled_only_uses_the_whole_batch():
    batch = MixedBatches(labelled=[Indexed("synth")], batch_size=6)[0]
    assert batch.labelled.rgb.shape == (6, 3, 4, 4) and batch.labelled.depth.shape == (6, 1, 4, 4)
    assert batch.unlabelled is None and batch.size == 6 and len(batch.labelled.names) == 6
    assert batch.labelled.extras == {}


def test_unlabelled_only_uses_the_whole_batch():
    batch = MixedBatches(unlabelled=Indexed("photo", labelled=False), batch_size=6)[0]
    assert batch.labelled is None and batch.unlabelled.rgb.shape == (6, 3, 4, 4)
    assert batch.size == 6 and len(batch.unlabelled.names) == 6


def test_both_streams_need_a_labelled_fraction():
    with pytest.raises(UserError, match="labelled_fraction"):
        MixedBatches(labelled=[Indexed("s")], unlabelled=Indexed("p", labelled=False),
                     batch_size=6)


def test_one_stream_rejects_a_fraction_that_would_shrink_the_batch():
    with pytest.raises(UserError, match="labelled_fraction"):
        MixedBatches(labelled=[Indexed("s")], batch_size=6, labelled_fraction=0.5)
    with pytest.raises(UserError, match="labelled_fraction"):
        MixedBatches(unlabelled=Indexed("p", labelled=False), batch_size=6, labelled_fraction=0.5)


@pytest.mark.parametrize("args, expected", [
    ((6, True, False, None), (6, 0)),
    ((6, True, False, 1.0), (6, 0)),     # the whole batch, said explicitly
    ((6, False, True, None), (0, 6)),
    ((6, False, True, 0.0), (0, 6)),
    ((6, True, True, 0.5), (3, 3)),
    ((8, True, True, 0.25), (2, 6)),
])
def test_split_batch(args, expected):
    assert split_batch(*args) == expected


def test_split_batch_errors():
    with pytest.raises(UserError, match="no data"):
        split_batch(6, False, False, None)
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        split_batch(6, True, True, 1.5)
    for batch_size, fraction in ((1, 0.5), (2, 0.2), (4, 0.1), (4, 0.9)):
        with pytest.raises(UserError, match="without images"):
            split_batch(batch_size, True, True, fraction)


def test_split_batch_rounds_halves_up():
    assert split_batch(5, True, True, 0.5) == (3, 2)  # not Python's round-half-to-even (2, 3)
    assert split_batch(3, True, True, 0.5) == (2, 1)


# --- flips -------------------------------------------------------------------------------------

def test_flip_normals_mirrors_the_width_and_negates_x_only():
    batched = flip_normals(torch.stack([NORMALS, NORMALS]))
    assert torch.equal(batched, torch.stack([FLIPPED_NORMALS, FLIPPED_NORMALS]))
    original = NORMALS.clone()
    assert torch.equal(flip_normals(NORMALS), FLIPPED_NORMALS)
    assert torch.equal(NORMALS, original)  # the input is left alone
    assert torch.equal(flip_normals(flip_normals(NORMALS)), NORMALS)


def test_hflip_applies_each_fields_rule_and_keeps_names():
    sample = {"rgb": RGB, "depth": DEPTH, "valid": VALID, "normals": NORMALS, "name": "a"}
    flipped = hflip(sample)
    assert flipped["name"] == "a"
    assert torch.equal(flipped["depth"], FLIPPED_DEPTH)
    assert torch.equal(flipped["valid"], FLIPPED_VALID)
    assert torch.equal(flipped["normals"], FLIPPED_NORMALS)
    assert torch.equal(flipped["rgb"][:, 0, 0], RGB[:, 0, 2])


def test_extra_normals_travel_flipped_with_the_image():
    batch = MixedBatches(labelled=[WithNormals()], batch_size=2, extra_targets=("normals",),
                         flip_probability=1.0)[0].labelled
    assert set(batch.extras) == {"normals"} and batch.extras["normals"].shape == (2, 3, 2, 3)
    for row in range(2):
        assert torch.equal(batch.extras["normals"][row], FLIPPED_NORMALS)
        assert torch.equal(batch.depth[row], FLIPPED_DEPTH)
        assert torch.equal(batch.valid[row], FLIPPED_VALID)
        assert torch.equal(batch.rgb[row], RGB.flip(-1))
    assert batch.names == ("scene-7/frame-0042",) * 2


def test_extra_normals_unflipped_without_flips():
    batch = MixedBatches(labelled=[WithNormals()], batch_size=2, extra_targets=("normals",),
                         flip_probability=0.0)[0].labelled
    for row in range(2):
        assert torch.equal(batch.extras["normals"][row], NORMALS)
        assert torch.equal(batch.depth[row], DEPTH)
        assert torch.equal(batch.valid[row], VALID)
        assert torch.equal(batch.rgb[row], RGB)


def test_labelled_batch_to_moves_extras():
    batch = MixedBatches(labelled=[WithNormals()], batch_size=1, extra_targets=("normals",),
                         flip_probability=0.0)[0]
    moved = batch.to(torch.device("cpu"))
    assert torch.equal(moved.labelled.extras["normals"][0], NORMALS)
    assert moved.labelled.names == ("scene-7/frame-0042",)


def test_missing_extra_target_names_the_sample():
    batches = MixedBatches(labelled=[WithNormals(normals=False)], batch_size=2,
                           extra_targets=("normals",), flip_probability=0.0)
    with pytest.raises(UserError, match="scene-7/frame-0042") as error:
        batches[0]
    assert "'normals'" in str(error.value)


def test_unknown_field_needs_a_flip_rule(monkeypatch):
    monkeypatch.setattr(augment, "FLIP_RULES", dict(augment.FLIP_RULES))  # undone afterwards
    segmentation = torch.tensor([[[1, 2, 3], [4, 5, 6]]])
    batches = MixedBatches(labelled=[WithNormals(segmentation=segmentation)], batch_size=1,
                           extra_targets=("segmentation",), flip_probability=1.0)
    with pytest.raises(UserError, match="segmentation") as error:
        batches[0]
    assert "scene-7/frame-0042" in str(error.value)
    # without flips the field is not touched, so nothing needs a rule
    unflipped = MixedBatches(labelled=[WithNormals(segmentation=segmentation)], batch_size=1,
                             extra_targets=("segmentation",), flip_probability=0.0)[0]
    assert torch.equal(unflipped.labelled.extras["segmentation"][0], segmentation)

    register_flip("segmentation", flip_width)
    flipped = batches[0].labelled.extras["segmentation"][0]
    assert torch.equal(flipped, torch.tensor([[[3, 2, 1], [6, 5, 4]]]))
    monkeypatch.undo()
    assert "segmentation" not in augment.FLIP_RULES  # the registration did not leak


def test_intrinsics_flip_moves_the_principal_point():
    intrinsics = torch.tensor([[500.0, 0.0, 2.5], [0.0, 400.0, 1.25], [0.0, 0.0, 1.0]])
    sample = {"rgb": torch.zeros(3, 4, 8), "intrinsics": intrinsics}
    flipped = hflip(sample)["intrinsics"]
    expected = torch.tensor([[500.0, 0.0, 4.5], [0.0, 400.0, 1.25], [0.0, 0.0, 1.0]])  # 7 - 2.5
    assert torch.equal(flipped, expected)
    assert torch.equal(intrinsics[0, 2], torch.tensor(2.5))  # the input is left alone
    assert torch.equal(hflip(hflip(sample))["intrinsics"], intrinsics)


def test_intrinsics_flip_uses_the_samples_own_width():
    intrinsics = torch.tensor([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
    flipped = hflip({"rgb": torch.zeros(3, 2, 640), "intrinsics": intrinsics})["intrinsics"]
    assert float(flipped[0, 2]) == 319.0


# --- mixed image sizes in one FiffDepth step ---------------------------------------------------

def mixed_size_batch() -> Batch:
    generator = torch.Generator().manual_seed(1)
    valid = torch.rand(2, 1, 16, 16, generator=generator) > 0.1
    return Batch(LabelledBatch(torch.rand(2, 3, 16, 16, generator=generator),
                               torch.rand(2, 1, 16, 16, generator=generator) * 5 + 1, valid,
                               names=("s0", "s1")),
                 UnlabelledBatch(torch.rand(3, 3, 24, 24, generator=generator),
                                 names=("r0", "r1", "r2")))


def test_labelled_and_unlabelled_images_of_different_sizes(monkeypatch):
    recipe, batch = make_recipe(), mixed_size_batch()
    backbone = recipe.model.backbone
    calls = []
    original = backbone.forward_many

    def spy(inputs):
        outputs = original(inputs)
        calls.append(([tuple(latent.shape) for latent, _ in inputs], outputs))
        return outputs

    monkeypatch.setattr(backbone, "forward_many", spy)
    out = recipe.losses(batch, torch.Generator().manual_seed(7), with_panels=True)
    assert set(out.terms) == {"t0", "trajectory", "t_minus_1"}
    assert all(torch.isfinite(term) for term in out.terms.values())
    # first round: t = 0 on the 16x16 synthetic and 24x24 real images (latents 8x8 and 12x12)
    shapes, (d0_synthetic, d0_real) = calls[0]
    assert shapes == [(2, 4, 8, 8), (3, 4, 12, 12)]
    assert d0_real.shape == (3, 4, 12, 12)

    model = recipe.model
    with torch.no_grad():
        x0 = model.encode_rgb(batch.labelled.rgb)
        x0_real = model.encode_rgb(batch.unlabelled.rgb)
        separate_real = backbone(x0_real, 0.0)
        separate_synthetic = backbone(x0, 0.0)
        torch.testing.assert_close(d0_real.detach(), separate_real, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(d0_synthetic.detach(), separate_synthetic, rtol=1e-4,
                                   atol=1e-5)
    expected = separate_pass_terms(recipe, batch, seed=7)
    # second round: trajectory (8x8) and filter (12x12) latents, again by size
    assert calls[1][0] == [(2, 4, 8, 8), (3, 4, 12, 12)]
    for name in ("t0", "trajectory", "t_minus_1"):
        torch.testing.assert_close(out.terms[name].detach(), expected[name], rtol=1e-4, atol=1e-5)
    assert out.panels["real/prediction_t0"].values.shape == (3, 1, 24, 24)
    assert out.panels["synthetic/prediction_t0"].values.shape == (2, 1, 16, 16)

    out.total.backward()
    grad = model.backbone.unet.conv_in.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None for p in model.codec.parameters())


def test_forward_many_matches_separate_calls_per_size():
    torch.manual_seed(0)
    backbone = small_backbone(block_out_channels=(16, 32), cross_attention_dim=8,
                              attention_head_dim=4, norm_num_groups=8)
    generator = torch.Generator().manual_seed(2)
    a = torch.randn(2, 4, 8, 8, generator=generator)
    b = torch.randn(1, 4, 6, 6, generator=generator)
    c = torch.randn(3, 4, 8, 8, generator=generator)
    t_a, t_b, t_c = torch.tensor([0.0, 5.0]), torch.tensor([-1.0]), torch.tensor([3.0, 0.0, 9.0])
    with torch.no_grad():
        outputs = backbone.forward_many([(a, t_a), (b, t_b), (c, t_c)])
        for (latent, t), output in zip([(a, t_a), (b, t_b), (c, t_c)], outputs):
            torch.testing.assert_close(output, backbone(latent, t), rtol=1e-4, atol=1e-5)
        # a 0-d timestep is broadcast to the pair's batch
        (single,) = backbone.forward_many([(a, torch.tensor(4.0))])
        torch.testing.assert_close(single, backbone(a, 4.0), rtol=1e-4, atol=1e-5)


def test_a_batch_with_nothing_to_learn_from_is_a_clear_error():
    recipe = make_recipe()
    recipe.teacher = None
    batch = Batch(None, UnlabelledBatch(torch.rand(2, 3, 16, 16)))
    with pytest.raises(UserError, match="FiffDepth.teacher"):
        recipe.losses(batch, torch.Generator().manual_seed(0))
