"""int8 engine: the bundled twin, `backend` choice, agreement with fp32, and `ferkit export --int8`."""

from __future__ import annotations

import json
import logging
import shutil
import time

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.data import load_dataset
from ferkit.errors import ModelFileError
from ferkit.models import load_classifier
from ferkit.models.classifier import Classifier
from ferkit.models.files import bundled_model_path, load_model, save_model
from ferkit.models.int8 import (
    EVERY_CORE,
    MARGIN_GRID,
    MATRIX_PRODUCT,
    ONE_THREAD,
    SAME_LABEL_FLOOR,
    Int8Classifier,
    choose_margin,
    fastest_on_one_face,
    int8_path,
    int8_problem,
    top_two_gap,
)
from ferkit.models.onnx import (
    INT8_PROPERTY,
    OnnxClassifier,
    export_bytes,
    read_onnx_file,
    with_matrix_product_convolutions,
    with_space_to_depth_stem,
    with_uint8_input,
)
from ferkit.models.wrappers import backend_of
from ferkit.onnx_session import cpu_session


@pytest.fixture(scope="module")
def test_faces(fer2013_dir):
    """The first 600 PublicTest + PrivateTest faces, as `ferkit.data` loads them."""
    return load_dataset(fer2013_dir).where_usage("PublicTest", "PrivateTest").images[:600]


@pytest.fixture(scope="module")
def bundled_int8():
    return load_classifier("default", backend="int8", calibrated=False)


@pytest.fixture()
def own_model(model_file, tmp_path):
    """A copy of the test model (weights + sidecar) in a folder of its own, where a twin may be written."""
    for path in (model_file, model_file.with_suffix(".json")):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / model_file.name


def test_bundled_model_ships_a_current_int8_twin():
    """Fails when default.safetensors changes without `ferkit export --int8` being run again."""
    assert int8_problem(bundled_model_path()) is None


def largest_int8_weight(twin) -> int:
    """The largest |value| among a twin's int8 tensors (its weights; biases are int32)."""
    from onnx import TensorProto, numpy_helper

    proto = read_onnx_file(twin)[0]
    return max(int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max())
               for t in proto.graph.initializer if t.data_type == TensorProto.INT8)


def test_twin_weights_cannot_saturate_on_cpus_without_vnni():
    """On AVX2 ONNX Runtime sums pairs of uint8 × int8 products in 16 bits: 255·(|w1| + |w2|) must stay
    ≤ 32,767, which 7-bit weights (|w| ≤ 64) guarantee. A VNNI CPU would not notice 8-bit weights; this
    test does."""
    assert largest_int8_weight(int8_path(bundled_model_path())) <= 64


def test_paths_may_be_given_as_strings(test_faces, bundled_int8):
    assert int8_problem(str(bundled_model_path())) is None
    assert int8_path(str(bundled_model_path())) == int8_path(bundled_model_path())
    loaded = Int8Classifier.load(str(bundled_model_path()))
    assert np.array_equal(loaded.logits(test_faces[:8]), bundled_int8.logits(test_faces[:8]))


@pytest.mark.parametrize("backend, engine", [("auto", Int8Classifier), ("int8", Int8Classifier),
                                             ("onnx", OnnxClassifier), ("torch", Classifier)])
def test_backend_choice_for_the_bundled_model(backend, engine):
    classifier = backend_of(load_classifier("default", backend=backend))
    assert type(classifier) is engine
    assert classifier.precision == {"auto": "int8", "int8": "int8", "onnx": "fp32", "torch": "fp32"}[backend]


def test_int8_keeps_the_fp32_labels(test_faces, bundled_int8):
    reference = load_classifier("default", backend="torch", calibrated=False).predict_proba(test_faces)
    int8, before = bundled_int8, bundled_int8.rechecked
    probs = int8.predict_proba(test_faces)
    assert (probs.argmax(1) == reference.argmax(1)).mean() >= 0.995
    assert np.abs(probs - reference).max() < 0.15
    assert 0 < int8.rechecked - before < 0.1 * len(test_faces)
    near_ties = top_two_gap(int8.fast.predict_proba(test_faces)) < int8.recheck_margin
    np.testing.assert_allclose(probs[near_ties], reference[near_ties], atol=1e-5)  # re-run in fp32


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_int8_batches_agree(test_faces, bundled_int8, batch):
    faces = test_faces[:100]
    np.testing.assert_allclose(bundled_int8.predict_proba(faces, batch_size=batch),
                               bundled_int8.predict_proba(faces), atol=1e-6)
    assert bundled_int8.predict_proba(test_faces[:0]).shape == (0, 7)


@pytest.mark.parametrize("fastest", [ONE_THREAD, MATRIX_PRODUCT, EVERY_CORE])
def test_one_face_runs_on_the_session_timed_fastest(test_faces, monkeypatch, fastest):
    """Candidates in order: the twin on one thread, the same with its deep convolutions on the matrix-product
    path, then the every-core session itself (no one-face session). Each gives the batch's answers."""
    picks = {ONE_THREAD: 0, MATRIX_PRODUCT: 1, EVERY_CORE: 2}
    monkeypatch.setattr("ferkit.models.int8.fastest_on_one_face", lambda engines: picks[fastest])
    two = Int8Classifier.load(bundled_model_path(), threads=2)
    assert two.fast.threads == 2
    assert (two.single is None) if fastest == EVERY_CORE else two.single.threads == 1
    assert two.one_face == fastest
    faces = test_faces[:40]
    one_by_one = np.concatenate([two.predict_proba(faces[i:i + 1]) for i in range(len(faces))])
    np.testing.assert_allclose(one_by_one, two.predict_proba(faces), atol=1e-6)
    np.testing.assert_allclose(two.predict_proba(faces, batch_size=1), one_by_one, atol=1e-6)


def test_one_thread_engine_keeps_only_a_matrix_product_candidate(monkeypatch):
    offered = []
    monkeypatch.setattr("ferkit.models.int8.fastest_on_one_face",
                        lambda engines: offered.append(len(engines)) or 0)
    one = Int8Classifier.load(bundled_model_path(), threads=1)
    assert offered == [2] and one.single.threads == 1  # the matrix-product twin against the engine itself
    assert one.one_face == MATRIX_PRODUCT


def test_one_face_speed_probe_answers_for_this_machine(bundled_int8):
    slow = OnnxClassifier(int8_path(bundled_model_path()).read_bytes(), bundled_int8.info, threads=1)
    run = slow.outputs
    slow.outputs = lambda crops: time.sleep(0.003) or run(crops)  # noqa: E731
    assert fastest_on_one_face([slow, bundled_int8.fast]) == 1
    assert fastest_on_one_face([bundled_int8.fast, slow, slow]) == 0


def test_uint8_input_graph_matches_float_input(model_file, test_faces):
    model, info = load_model(model_file)
    plain = export_bytes(model, info)
    float_input = OnnxClassifier(plain, info)
    uint8_input = OnnxClassifier(with_uint8_input(plain, info), info)
    assert not float_input.takes_uint8 and uint8_input.takes_uint8
    np.testing.assert_allclose(uint8_input.logits(test_faces[:64]), float_input.logits(test_faces[:64]),
                               atol=1e-4)


def test_model_without_twin_runs_fp32_and_refuses_int8(own_model):
    assert type(backend_of(load_classifier(own_model))) is OnnxClassifier
    with pytest.raises(ModelFileError, match="ferkit export --int8"):
        load_classifier(own_model, backend="int8")


def test_export_int8_then_auto_uses_it_until_the_weights_change(own_model, fer2013_small, test_faces, capsys,
                                                                 caplog):
    argv = ["export", "--model", str(own_model), "--int8", "--calibration", str(fer2013_small)]
    assert main(argv) == 0
    assert int8_path(own_model).is_file() and str(int8_path(own_model)) in capsys.readouterr().out
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]  # quantiser chatter
    provenance = json.loads(read_onnx_file(int8_path(own_model))[1][INT8_PROPERTY])
    assert "PublicTest" in provenance["margin_chosen_on"] and provenance["recheck_margin"] in MARGIN_GRID
    assert largest_int8_weight(int8_path(own_model)) <= 64
    assert type(backend_of(load_classifier(own_model))) is Int8Classifier
    assert OnnxClassifier.load(int8_path(own_model)).precision == "int8"
    model, info = load_model(own_model)
    for p in model.parameters():
        p.data.mul_(1.01)
    save_model(own_model, model, info)  # retrained: the twin is stale now
    assert "other weights" in int8_problem(own_model)
    assert type(backend_of(load_classifier(own_model))) is OnnxClassifier


@pytest.mark.parametrize("argv, words", [
    (["export", "--int8"], "--calibration"),
    (["export", "--calibration", "x"], "--calibration is for --int8"),
    (["export", "--int8", "--calibration", "@ckplus"], "training split"),
])
def test_export_int8_mistakes(argv, words, ckplus_dir, tmp_path, capsys):
    argv = [str(ckplus_dir) if a == "@ckplus" else a for a in argv] + ["--out", str(tmp_path / "x.onnx")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferkit: error:") and words in err[0]


def test_margin_is_the_smallest_that_keeps_the_floor_of_labels():
    probs = np.tile([[0.5, 0.3, 0.2]], (1000, 1))  # top-two gap 0.2: never re-checked
    probs[:10] = [0.41, 0.392, 0.198]  # gap 0.018, and the int8 label differs from fp32's there
    exact = probs.argmax(1)
    exact[:10] = 1
    margin, kept = choose_margin(probs, exact)
    assert margin == min(m for m in MARGIN_GRID if m > 0.018) and kept == 1.0
    exact[-5:] = 2  # 0.5 % differ far from any tie: no margin keeps 99.6 %, the largest is taken
    assert choose_margin(probs, exact) == (MARGIN_GRID[-1], 0.995) and SAME_LABEL_FLOOR > 0.995


def test_twin_outputs_probabilities_and_older_twins_still_work(test_faces, bundled_int8):
    import onnx

    fast = bundled_int8.fast
    z, probs, top2 = fast.outputs(test_faces[:50])
    np.testing.assert_allclose(probs, np.exp(z) / np.exp(z).sum(1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(top2, np.sort(probs, axis=1)[:, ::-1][:, :2], atol=1e-7)
    proto = onnx.load_from_string(int8_path(bundled_model_path()).read_bytes())
    del proto.graph.output[1:]  # a twin made before the probability outputs
    older = Int8Classifier(OnnxClassifier(proto.SerializeToString(), fast.info), bundled_int8.exact,
                           bundled_int8.recheck_margin)
    faces = test_faces[:50]
    np.testing.assert_allclose(older.predict_proba(faces), bundled_int8.predict_proba(faces), atol=1e-6)


def test_one_face_at_a_time_rechecks_the_same_near_ties(test_faces, bundled_int8):
    """One face per call takes the Python-float near-tie test; it must re-check exactly the batch's faces."""
    faces = test_faces[:200]
    before = bundled_int8.rechecked
    batch = bundled_int8.predict_proba(faces)
    in_batch = bundled_int8.rechecked - before
    one_by_one = np.concatenate([bundled_int8.predict_proba(faces[i:i + 1]) for i in range(len(faces))])
    assert in_batch > 0 and bundled_int8.rechecked - before == 2 * in_batch
    np.testing.assert_allclose(one_by_one, batch, atol=1e-6)


@pytest.mark.parametrize("model", ["default", "wild"])
def test_space_to_depth_stem_gives_the_twins_exact_outputs(model):
    """The default twin's one-channel stride-2 stem becomes a 2×2 conv over SpaceToDepth's 4 channels with the
    same integers; `wild`'s stride-1 stem is left alone. Extreme crops (all 0, all 255) included."""
    proto, _ = read_onnx_file(int8_path(bundled_model_path(model)))
    rewritten = with_space_to_depth_stem(proto)
    stacked = [n for n in rewritten.graph.node if n.op_type == "SpaceToDepth"]
    assert len(stacked) == (1 if model == "default" else 0)
    crops = np.random.default_rng(0).integers(0, 256, (40, 48, 48), dtype=np.uint8)
    crops[0], crops[1] = 0, 255
    before, after = (cpu_session(graph.SerializeToString()).run(None, {"crops": crops})
                     for graph in (proto, rewritten))
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert with_space_to_depth_stem(rewritten).SerializeToString() == rewritten.SerializeToString()


@pytest.mark.parametrize("model", ["default", "wild"])
def test_matrix_product_convolutions_give_the_twins_exact_outputs(model):
    """One output channel of each deep convolution (≥ 512 inputs per output) moves its weights and its zero
    point by the same ±1: the same integers, so bit-for-bit the same outputs, and every weight stays within
    ±64 for CPUs without VNNI. The default: its seven deep 3×3 convolutions change."""
    from onnx import numpy_helper

    proto = with_space_to_depth_stem(read_onnx_file(int8_path(bundled_model_path(model)))[0])
    rewritten = with_matrix_product_convolutions(proto)
    before, after = ({t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
                     for graph in (proto, rewritten))
    changed = [name for name in before if not np.array_equal(before[name], after[name])]
    weights = [name for name in changed if after[name].ndim == 4]
    assert len(changed) == 2 * len(weights) > 0
    for name in weights:
        moved = np.flatnonzero((after[name] != before[name]).reshape(len(after[name]), -1).any(1))
        step = int(after[name][moved[0]].astype(int).sum() - before[name][moved[0]].astype(int).sum())
        assert len(moved) == 1 and abs(step) == after[name][moved[0]].size
        assert np.prod(after[name].shape[1:]) >= 512 and np.abs(after[name].astype(int)).max() <= 64
    zero_points = [after[name] for name in changed if after[name].ndim == 1]
    assert all(np.count_nonzero(z) == 1 and np.abs(z).max() == 1 for z in zero_points)
    if model == "default":
        assert len(weights) == 7
    crops = np.random.default_rng(0).integers(0, 256, (40, 48, 48), dtype=np.uint8)
    crops[0], crops[1] = 0, 255
    outputs = [cpu_session(g.SerializeToString()).run(None, {"crops": crops}) for g in (proto, rewritten)]
    assert all(np.array_equal(a, b) for a, b in zip(*outputs))
    assert with_matrix_product_convolutions(rewritten) == rewritten  # shifted zero points are left alone
