"""LFW pairs parsing, the identification split and both evaluation drivers with fake embeddings."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from facesearch.eval.metrics import kfold_accuracy
from facesearch.eval.protocols import (
    Pair,
    evaluate_identification,
    evaluate_verification,
    identification_split,
    pair_distances,
    read_identities,
    read_pairs,
)

IMG = Path("/lfw")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    return path


def lfw(name: str, i: int) -> Path:
    return IMG / name / f"{name}_{i:04d}.jpg"


# -- read_pairs -----------------------------------------------------------------------------------


def test_read_pairs_single_list_tabs_and_spaces(tmp_path: Path) -> None:
    pl = read_pairs(write(tmp_path, "2\nAnn_Lee\t1\t2\nBo  1 3\nAnn_Lee 1 Bo 2\nCy\t4\tDi\t10\n\n"), IMG)
    assert not pl.is_kfold and len(pl) == 4
    assert [f.tolist() for f in pl.folds] == [[0, 1, 2, 3]]
    assert pl.pairs[0] == Pair(lfw("Ann_Lee", 1), lfw("Ann_Lee", 2), True, 0)
    assert pl.pairs[3] == Pair(lfw("Cy", 4), lfw("Di", 10), False, 0)
    assert pl.same.tolist() == [True, True, False, False]
    assert str(pl.pairs[3].path_b).endswith("Di/Di_0010.jpg")


def test_read_pairs_folds(tmp_path: Path) -> None:
    text = "2 1\nA 1 2\nA 1 B 1\nC 1 2\nC 2 D 3\n"
    pl = read_pairs(write(tmp_path, text), IMG)
    assert pl.is_kfold
    assert [f.tolist() for f in pl.folds] == [[0, 1], [2, 3]]
    assert [p.fold for p in pl.pairs] == [0, 0, 1, 1]
    assert pl.same.tolist() == [True, False, True, False]
    assert pl.pairs[3] == Pair(lfw("C", 2), lfw("D", 3), False, 1)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("2\nA 1 2\nB 1 2 3\nA 1 B 1\nC 1 D 1\n", 3),  # 4 fields in the matched section
        ("1\nA 1 2\nA 1 B\n", 3),  # 3 fields in the mismatched section
        ("1\nA one 2\nA 1 B 1\n", 2),  # not a number
        ("1\nA 0 2\nA 1 B 1\n", 2),  # images are numbered from 1
        ("2 1\nA 1 2\nA 1 B 1\nC 1 2\n", 5),  # ends early
        ("1\nA 1 2\nA 1 B 1\nC 1 2\n", 4),  # extra line
        ("x\nA 1 2\nA 1 B 1\n", 1),  # bad header
    ],
)
def test_read_pairs_malformed_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    with pytest.raises(ValueError, match=rf"line {line}\b"):
        read_pairs(write(tmp_path, text), IMG)


# -- identities / split ---------------------------------------------------------------------------


def test_read_identities_and_split(tmp_path: Path) -> None:
    files = ["alice/a2.PNG", "alice/a1.jpg", "alice/a3.webp", "alice/notes.txt", "alice/.hidden.jpg"]
    files += ["bob/b.jpeg", "carol/c1.jpg", "carol/c2.jpg", "dave/d.webp", "erin/readme.md"]
    for f in files:
        (tmp_path / f).parent.mkdir(exist_ok=True)
        (tmp_path / f).write_bytes(b"x")
    (tmp_path / "stray.jpg").write_bytes(b"x")
    ids = read_identities(tmp_path)
    assert list(ids) == ["alice", "bob", "carol", "dave"]
    assert [p.name for p in ids["alice"]] == ["a1.jpg", "a2.PNG", "a3.webp"]

    split = identification_split(ids)
    assert [(s.identity, s.path.name) for s in split.gallery] == [
        ("alice", "a1.jpg"),
        ("bob", "b.jpeg"),
        ("carol", "c1.jpg"),
        ("dave", "d.webp"),
    ]
    assert [(s.identity, s.path.name) for s in split.mated_probes] == [
        ("alice", "a2.PNG"),
        ("alice", "a3.webp"),
        ("carol", "c2.jpg"),
    ]
    assert [(s.identity, s.path.name) for s in split.nonmated_probes] == [
        ("bob", "b.jpeg"),
        ("dave", "d.webp"),
    ]
    assert split.n_enrolled == 2 and split.n_distractors == 2
    with pytest.raises(NotADirectoryError):
        read_identities(tmp_path / "missing")


# -- verification ---------------------------------------------------------------------------------


class FakeEmbed:
    """Embeddings from a dict (None = no face found); counts calls per path."""

    def __init__(self, vectors: dict[Path, list[float] | None]) -> None:
        self.vectors = vectors
        self.calls: Counter[Path] = Counter()

    def __call__(self, path: Path) -> np.ndarray | None:
        self.calls[path] += 1
        v = self.vectors[path]
        return None if v is None else np.asarray(v, dtype=np.float32)


def test_evaluate_verification_single_list_with_detection_failure(tmp_path: Path) -> None:
    pl = read_pairs(write(tmp_path, "2\nA 1 2\nB 1 2\nA 1 B 1\nA 2 C 1\n"), IMG)
    embed = FakeEmbed(
        {
            lfw("A", 1): [0, 0],
            lfw("A", 2): [0, 1],
            lfw("B", 1): [5, 0],
            lfw("B", 2): None,
            lfw("C", 1): [0, 3],
        }
    )
    # distances: same [1, inf], different [5, 2]
    rep = evaluate_verification(pl, embed, fixed_threshold=3.0)
    assert set(embed.calls.values()) == {1}  # one embedding per unique image
    assert rep.n_pairs == 4 and rep.n_same == 2 and rep.n_different == 2 and rep.n_images == 5
    assert rep.detection_failures == 1 and rep.pairs_affected == 1
    assert rep.failed_images == (str(lfw("B", 2)),)
    assert "+inf" in rep.failure_policy
    assert not rep.is_kfold and rep.accuracy_std is None
    assert rep.threshold == pytest.approx(1.5)
    assert rep.accuracy == pytest.approx(0.75)
    assert rep.accuracy_at_fixed_threshold == pytest.approx(0.5)
    assert rep.roc_auc == pytest.approx(0.5)
    assert rep.tar_at_far_1e3 == pytest.approx(0.5) and rep.threshold_at_far_1e3 < 2.0
    assert rep.eer == pytest.approx(0.5) and rep.eer_threshold == pytest.approx(3.5)
    out = rep.to_dict()
    json.dumps(out, allow_nan=False)
    assert out["accuracy_at_fixed_threshold"] == pytest.approx(0.5) and out["fold_accuracies"] == []


def test_evaluate_verification_kfold_matches_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    lines, vectors = ["3 4"], {}
    for fold in range(3):
        for k in range(4):
            name = f"S{fold}_{k}"
            lines.append(f"{name} 1 2")
            base = rng.normal(size=3)
            vectors[lfw(name, 1)] = base.tolist()
            vectors[lfw(name, 2)] = (base + rng.normal(scale=0.3, size=3)).tolist()
        for k in range(4):
            a, b = f"X{fold}_{k}", f"Y{fold}_{k}"
            lines.append(f"{a} 1 {b} 1")
            vectors[lfw(a, 1)] = rng.normal(size=3).tolist()
            vectors[lfw(b, 1)] = None if (fold, k) == (1, 2) else rng.normal(size=3).tolist()
    pl = read_pairs(write(tmp_path, "\n".join(lines) + "\n"), IMG)
    embed = FakeEmbed(vectors)
    rep = evaluate_verification(pl, embed)
    d, failed = pair_distances(pl, FakeEmbed(vectors))
    expected = kfold_accuracy(d, pl.same, pl.folds)
    assert rep.is_kfold and rep.n_folds == 3
    assert rep.fold_accuracies == expected.accuracies and rep.fold_thresholds == expected.thresholds
    assert rep.accuracy == expected.mean and rep.accuracy_std == expected.std
    assert rep.detection_failures == 1 and rep.pairs_affected == 1 and math.isinf(d[4 + 8 + 2])
    assert len(failed) == 1
    json.dumps(rep.to_dict(), allow_nan=False)


def test_evaluate_verification_all_failures(tmp_path: Path) -> None:
    pl = read_pairs(write(tmp_path, "1\nA 1 2\nA 1 B 1\n"), IMG)
    with pytest.raises(ValueError, match="no pair"):
        evaluate_verification(pl, lambda _p: None)


# -- identification -------------------------------------------------------------------------------


def p(name: str) -> Path:
    return Path("/ids") / name


IDENTITIES = {
    "alice": [p("a1"), p("a2"), p("a3")],
    "bob": [p("b1")],
    "carol": [p("c1"), p("c2"), p("c3")],
    "dave": [p("d1")],
    "erin": [p("e1"), p("e2")],
    "frank": [p("f1")],
}
VECTORS: dict[Path, list[float] | None] = {
    p("a1"): [0.0, 0.0],  # gallery
    p("a2"): [0.1, 0.0],  # alice .1 carol 2.9 -> rank 1
    p("a3"): [2.9, 0.0],  # carol .1 alice 2.9 -> rank 2
    p("b1"): [10.0, 0.0],  # distractor; leave-one-out top-1: dave at 4
    p("c1"): [3.0, 0.0],  # gallery
    p("c2"): [3.5, 0.0],  # carol .5 dave 2.5 -> rank 1
    p("c3"): None,  # mated probe without a face: a miss
    p("d1"): [6.0, 0.0],  # distractor; leave-one-out top-1: carol at 3
    p("e1"): None,  # gallery photo without a face: erin is not enrolled
    p("e2"): [0.05, 0.0],  # a miss although close to alice
    p("f1"): None,  # distractor without a face: no candidate
}


@pytest.mark.parametrize("chunk_size", [1, 2, 1024])
def test_evaluate_identification_known_answers(chunk_size: int) -> None:
    split = identification_split(IDENTITIES)
    embed = FakeEmbed(VECTORS)
    rep = evaluate_identification(split, embed, chunk_size=chunk_size)
    assert set(embed.calls.values()) == {1}
    assert rep.n_images == 11 and rep.n_gallery == 4
    assert rep.n_enrolled == 3 and rep.n_distractors == 3
    assert rep.n_mated_probes == 5 and rep.n_nonmated_probes == 3
    assert rep.gallery_failures == 2 and rep.gallery_failed_identities == ("erin", "frank")
    assert rep.mated_probe_failures == 1 and rep.mated_probes_without_gallery == 1
    assert rep.nonmated_probe_failures == 1
    # ranks: a2 1, a3 2, c2 1, c3 0 (no face), e2 0 (not enrolled)
    assert rep.rank1 == pytest.approx(2 / 5) and rep.rank5 == pytest.approx(3 / 5)
    # non-mated top-1: 4 (bob), 3 (dave), inf (frank): FPIR 1e-2 of 3 allows none -> t just below 3;
    # hits: a2 (.1) and c2 (.5).
    assert rep.threshold_at_fpir_1e2 == np.nextafter(3.0, -math.inf)
    assert rep.fnir_at_fpir_1e2 == pytest.approx(3 / 5)
    assert rep.fnir_at_fpir_1e3 == pytest.approx(3 / 5)
    json.dumps(rep.to_dict(), allow_nan=False)


def test_evaluate_identification_nonmated_never_meets_itself() -> None:
    # Without leave-one-out bob's probe would find bob's own gallery photo at distance 0.
    split = identification_split({"ann": [p("x1"), p("x2")], "bob": [p("y1")]})
    vectors: dict[Path, list[float] | None] = {p("x1"): [0.0], p("x2"): [0.2], p("y1"): [5.0]}
    rep = evaluate_identification(split, FakeEmbed(vectors))
    assert rep.threshold_at_fpir_1e2 == np.nextafter(5.0, -math.inf)
    assert rep.fnir_at_fpir_1e2 == 0.0 and rep.rank1 == 1.0
    unit: dict[Path, list[float] | None] = {p("x1"): [1.0, 0.0], p("x2"): [1.0, 0.1], p("y1"): [-1.0, 0.0]}
    cos = evaluate_identification(split, FakeEmbed(unit), metric="cosine")
    assert cos.rank1 == 1.0 and cos.metric == "cosine" and cos.fnir_at_fpir_1e2 == 0.0


def test_evaluate_identification_without_distractors_or_mated() -> None:
    split = identification_split({"ann": [p("x1"), p("x2")]})
    rep = evaluate_identification(split, FakeEmbed({p("x1"): [0.0], p("x2"): [1.0]}))
    assert rep.rank1 == 1.0 and rep.fnir_at_fpir_1e2 is None and rep.n_nonmated_probes == 0
    with pytest.raises(ValueError, match="mated"):
        evaluate_identification(identification_split({"bob": [p("y1")]}), FakeEmbed({p("y1"): [0.0]}))
