"""The blind baseline: a classifier that sees only the records, never the model.

If it tells the target's members from its non-members, the two sets differ as images (another source,
other classes, other processing), and an attack's AUC measures that difference as much as any leakage
(CopyMark: PFAMI at AUC 0.92 on CelebA-HQ against FFHQ, 0.49-0.55 on matched sets; Das et al. 2024,
"Blind baselines beat membership inference attacks for foundation models").

The features are simple image statistics, the same number whatever the image size: per channel an
8 x 8 thumbnail (block means), a 16-bin intensity histogram, the mean and standard deviation, and the
mean absolute difference of neighbouring pixels across and down (sharpness, noise). The classifier is
the learned attacks' default, unchanged: the RBF-kernel SVM with c = 1 on the standardised features
(``pfami.attacks.learned``; chosen for those attacks on the shadow records, never tuned here). It is
cross-fitted on the target records themselves: stratified 10-fold, each record scored by the SVM fitted on
the other nine folds, repeated over 5 fold draws (seeded from the experiment's seed) and averaged, so
that the fold draw moves the scores little. Not leave-one-out, as the learned attacks' shadow scores
are: pooled leave-one-out scores fall below chance when there is nothing to find (leaving a record out
tilts the training set, and with it the boundary, against the record's own class); stratified folds
keep each training fold's balance. Pooled cross-fitted scores keep a little of that pessimism (about
-0.03 in AUC on random draws of the digits), which makes the warning, if anything, harder to trigger.
Its ASR is taken at the SVM's own boundary (margin 0), out of fold too. Torch-free.
"""

from __future__ import annotations

import numpy as np

from pfami.attacks.learned import DEFAULT_CLASSIFIER, ConvexClassifier

FOLDS = 10
REPEATS = 5
# The learned attacks' default classifier and its c (config/config.yaml, attacks.pfami_nns).
CLASSIFIER = DEFAULT_CLASSIFIER
C = 1.0
THUMBNAIL_SIDE = 8
HISTOGRAM_BINS = 16
# The ASR threshold: the SVM's own boundary (margin 0).
DECISION_THRESHOLD = 0.0


def _block_means(images: np.ndarray, side: int) -> np.ndarray:
    """[R, C, side, side] means of (nearly) equal blocks of [R, C, S, S] images (side <= S)."""
    size = images.shape[-1]
    edges = (np.arange(side) * size) // side
    rows = np.add.reduceat(images, edges, axis=2) / np.diff(np.append(edges, size))[None, None, :, None]
    return np.add.reduceat(rows, edges, axis=3) / np.diff(np.append(edges, size))[None, None, None, :]


def image_statistics(images: np.ndarray) -> np.ndarray:
    """[R, F] statistics of float images [R, C, S, S] in [-1, 1] (see the module docstring)."""
    images = np.asarray(images, dtype=np.float64)
    records, channels = images.shape[:2]
    thumbnail = _block_means(images, min(THUMBNAIL_SIDE, images.shape[-1])).reshape(records, -1)
    flat = images.reshape(records, channels, -1)
    bins = np.clip(((flat + 1.0) / 2.0 * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
    histogram = np.stack([np.stack([np.bincount(row, minlength=HISTOGRAM_BINS) for row in record]) for record in bins])
    histogram = histogram.reshape(records, -1) / flat.shape[-1]
    across = np.abs(np.diff(images, axis=3)).mean(axis=(2, 3))
    down = np.abs(np.diff(images, axis=2)).mean(axis=(2, 3))
    return np.concatenate([thumbnail, histogram, flat.mean(axis=2), flat.std(axis=2), across, down], axis=1)


def cross_fitted_scores(features: np.ndarray, is_member: np.ndarray, seed: int, folds: int = FOLDS,
                        repeats: int = REPEATS, c: float = C) -> np.ndarray:
    """Each record's SVM margin (higher = member) from SVMs that never saw it (stratified ``folds``-fold,
    ``repeats`` fold draws from ``seed``, averaged)."""
    from sklearn.model_selection import StratifiedKFold

    is_member = np.asarray(is_member, dtype=bool)
    smaller_class = int(min(is_member.sum(), (~is_member).sum()))
    if smaller_class < 2:
        raise ValueError("blind baseline: needs at least 2 members and 2 non-members to cross-fit")
    folds = min(folds, smaller_class)
    model = ConvexClassifier(CLASSIFIER, features, c)
    rows = model.rows()
    scores = np.zeros(len(features))
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        splitter = StratifiedKFold(folds, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
        for train_indices, test_indices in splitter.split(rows, is_member):
            train = np.zeros(len(features), dtype=bool)
            train[train_indices] = True
            scores[test_indices] += model.fit_scores(is_member, train, rows[test_indices])
    return scores / repeats


def blind_baseline_scores(images: np.ndarray, is_member: np.ndarray, seed: int) -> np.ndarray:
    """The blind baseline's cross-fitted scores of records ``images`` [R, C, S, S] in [-1, 1]."""
    return cross_fitted_scores(image_statistics(images), is_member, seed)
