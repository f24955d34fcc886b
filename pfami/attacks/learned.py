"""The classifiers of the learned attacks (PFAMI_NNs on H, SecMI_NNs on its error images).

An attack's ``classifier`` setting picks one:

- ``svm`` (the default) or ``logistic``: a support-vector machine with an RBF kernel, or L2-regularised
  logistic regression, on the standardised, flattened features, with inverse regularisation
  strength ``c``. Both are convex: their training objective has one optimum, which the solver
  reaches to a tight tolerance and which moves continuously with the features, so a last-bit
  difference in the inputs (another CPU's kernels) moves the scores by about as much, not by a
  retrained network's worth. Nothing in them is random. The target records are scored by the model
  fitted on all shadow records; each shadow record gets the score of the model fitted on all the
  others (leave-one-out), from which the decision threshold is fitted without in-sample bias. The
  features are standardised with the shadow records' statistics (labels play no part in them).
  Torch-free.
- ``resnet``: the authors' recipe (``pfami.attacks.classifier``: their small ResNet, Adam, full
  batch, a fixed number of epochs, two-fold cross-fitting), bit-identical to earlier releases.

How ``svm`` and its ``c`` were chosen, on the shadow model's records only:
``benchmarks/classifier_selection.py`` and the README (*Learned attacks*).
"""

from __future__ import annotations

import numpy as np

CONVEX_CLASSIFIERS = ("svm", "logistic")
CLASSIFIERS = (*CONVEX_CLASSIFIERS, "resnet")
DEFAULT_CLASSIFIER = "svm"


class ConvexClassifier:
    """``classifier`` with inverse regularisation strength ``c`` on features standardised with the
    statistics of one fixed set of records (the shadow records), flattened per record. The SVM works
    on a precomputed RBF kernel (gamma = 1 / (features x variance of the standardised features), as
    scikit-learn's "scale"), so that the leave-one-out fits share one kernel matrix."""

    def __init__(self, classifier: str, features: np.ndarray, c: float):
        if classifier not in CONVEX_CLASSIFIERS:
            raise ValueError(f"classifier: {classifier!r} is not one of {list(CONVEX_CLASSIFIERS)}")
        flat = _flat(features)
        self.classifier, self.c = classifier, c
        self.mean, self.std = flat.mean(axis=0), flat.std(axis=0)
        self.std[self.std == 0] = 1.0
        self.standardised = self.standardise(features)
        self.gamma = 1.0 / (self.standardised.shape[1] * self.standardised.var())
        self.kernel = self.rbf(self.standardised) if classifier == "svm" else None

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return (_flat(features) - self.mean) / self.std

    def rbf(self, standardised: np.ndarray) -> np.ndarray:
        """The RBF kernel between ``standardised`` records and the training records."""
        distances = ((standardised ** 2).sum(axis=1)[:, None] + (self.standardised ** 2).sum(axis=1)[None, :]
                     - 2 * standardised @ self.standardised.T)
        return np.exp(-self.gamma * np.maximum(distances, 0.0))

    def fit_scores(self, is_member: np.ndarray, train: np.ndarray, scored: np.ndarray) -> np.ndarray:
        """Fit on the training records ``train`` (a boolean mask), return the decision function
        (higher = member: the SVM's margin, logistic regression's log-odds) of the rows ``scored``
        (standardised features, or for the SVM their kernel rows against every training record)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import SVC

        labels = is_member[train]
        if len(np.unique(labels)) != 2:
            raise ValueError("the classifier needs both members and non-members in its training features")
        if self.classifier == "svm":
            model = SVC(C=self.c, kernel="precomputed", tol=1e-8).fit(self.kernel[np.ix_(train, train)], labels)
            return model.decision_function(scored[:, train]).astype(np.float64)
        # Newton's method with the exact Hessian converges quadratically: at this tolerance the result
        # is the optimum to near machine precision, not wherever an iterative solver happened to stop.
        model = LogisticRegression(C=self.c, solver="newton-cholesky", tol=1e-12, max_iter=1000)
        return model.fit(self.standardised[train], labels).decision_function(scored).astype(np.float64)

    def rows(self, features: np.ndarray | None = None) -> np.ndarray:
        """What ``fit_scores`` scores: the training records' rows, or those of new ``features``."""
        standardised = self.standardised if features is None else self.standardise(features)
        if self.classifier == "svm":
            return self.kernel if features is None else self.rbf(standardised)
        return standardised


def convex_classifier_scores(classifier: str, features: np.ndarray, is_member: np.ndarray, new_features: np.ndarray,
                             c: float) -> tuple[np.ndarray, np.ndarray]:
    """(leave-one-out scores of the training records, scores of ``new_features`` by the model fitted on
    all training records). Leave-one-out rather than K folds: the threshold fitted on these scores
    does not depend on a draw of folds (with 5 folds the FPR it gave on the target ranged from 0.055
    to 0.20 over five fold draws of the default), so nothing here is random."""
    is_member = np.asarray(is_member, dtype=bool)
    model = ConvexClassifier(classifier, features, c)
    training_rows, everyone = model.rows(), np.ones(len(features), dtype=bool)
    out_of_sample = np.empty(len(features))
    for record in range(len(features)):
        others = everyone.copy()
        others[record] = False
        out_of_sample[record] = model.fit_scores(is_member, others, training_rows[record:record + 1])[0]
    return out_of_sample, model.fit_scores(is_member, everyone, model.rows(new_features))


def learned_scores(features: np.ndarray, is_member: np.ndarray, new_features: np.ndarray, settings: dict,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The attack's classifier (``settings["classifier"]``, default ``svm``) trained on the shadow
    records' ``features`` [R, C, H, W] and labels. Returns (out-of-sample shadow scores, scores of
    ``new_features``, the target records); the target's labels are never seen."""
    classifier = settings.get("classifier", DEFAULT_CLASSIFIER)
    if classifier in CONVEX_CLASSIFIERS:  # nothing random in them: no seed
        return convex_classifier_scores(classifier, features, is_member, new_features, settings["c"])
    if classifier == "resnet":
        from pfami.attacks.classifier import ensemble_scores  # torch: only the authors' recipe pays for it

        return ensemble_scores(features, is_member, new_features, settings["epochs"], settings["learning_rate"], seed,
                               settings.get("classifiers", 1))
    raise ValueError(f"classifier: unknown classifier {classifier!r}; choose from {list(CLASSIFIERS)}")


# The settings each classifier takes, beside the attack's own (SecMI's t_sec and k).
CLASSIFIER_KEYS = {"svm": {"c"}, "logistic": {"c"}, "resnet": {"epochs", "learning_rate", "classifiers"}}
REQUIRED_KEYS = {"svm": {"c"}, "logistic": {"c"}, "resnet": {"epochs", "learning_rate"}}


def check_classifier_settings(where: str, settings: dict) -> None:
    """Raise ``ValueError`` naming the key (``where`` is the attack's config key) when ``settings``
    give keys of another classifier or miss one of their own."""
    classifier = settings.get("classifier", DEFAULT_CLASSIFIER)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"{where}.classifier: unknown classifier {classifier!r}; choose from {list(CLASSIFIERS)}")
    other = set().union(*(keys for name, keys in CLASSIFIER_KEYS.items() if name != classifier))
    foreign = sorted((other - CLASSIFIER_KEYS[classifier]) & set(settings))
    if foreign:
        raise ValueError(f"{where}.{foreign[0]}: the {classifier} classifier does not take it; remove it, or choose "
                         f"the classifier that does ({where}.classifier)")
    missing = sorted(REQUIRED_KEYS[classifier] - set(settings))
    if missing:
        raise ValueError(f"{where}: the {classifier} classifier needs {', '.join(missing)}; see config/README.md")


def _flat(features: np.ndarray) -> np.ndarray:
    return np.asarray(features, dtype=np.float64).reshape(len(features), -1)
