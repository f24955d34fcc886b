"""The classifiers of the learned attacks (PFAMI_NNs on H, SecMI_NNs on its error images).

An attack's ``classifier`` setting picks one:

- ``svm`` (the default) or ``logistic``: a support-vector machine with an RBF kernel, or L2-regularised
  logistic regression, on the standardised, flattened features, with inverse regularisation
  strength ``c``. Both are convex: their training objective has one optimum, which the solver
  reaches to a tight tolerance and which moves continuously with the features, so a last-bit
  difference in the inputs (another CPU's kernels) moves the scores by about as much, not by a
  retrained network's worth. Nothing in them is random. The target records are scored by the model
  fitted on all shadow records; the shadow records get out-of-fold scores (stratified K-fold
  cross-fitting), from which the decision threshold is fitted without in-sample bias. Torch-free.
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
# Folds of the shadow records' cross-fitting for the convex classifiers: each fold model sees 80%
# of them, close to the full model that scores the target.
CROSS_FITTING_FOLDS = 5


def fit_convex_classifier(classifier: str, features: np.ndarray, is_member: np.ndarray, c: float):
    """A fitted scikit-learn pipeline (standardisation with the training features' statistics, then
    ``classifier`` with inverse regularisation strength ``c``) on ``features`` [R, ...] flattened per record."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if len(np.unique(is_member)) != 2:
        raise ValueError("the classifier needs both members and non-members in its training features")
    if classifier == "svm":
        # gamma "scale": 1 / (features x their variance), about 1 / features after standardising.
        estimator = SVC(C=c, kernel="rbf", gamma="scale", tol=1e-8)
    elif classifier == "logistic":
        # Newton's method with the exact Hessian converges quadratically: at this tolerance the result
        # is the optimum to near machine precision, not wherever an iterative solver happened to stop.
        estimator = LogisticRegression(C=c, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    else:
        raise ValueError(f"classifier: {classifier!r} is not one of {list(CONVEX_CLASSIFIERS)}")
    return make_pipeline(StandardScaler(), estimator).fit(_flat(features), np.asarray(is_member, dtype=bool))


def convex_member_scores(model, features: np.ndarray) -> np.ndarray:
    """The decision function per record (higher = member): the SVM's margin, logistic regression's log-odds."""
    return model.decision_function(_flat(features)).astype(np.float64)


def convex_classifier_scores(classifier: str, features: np.ndarray, is_member: np.ndarray, new_features: np.ndarray,
                             c: float, seed: int, folds: int = CROSS_FITTING_FOLDS) -> tuple[np.ndarray, np.ndarray]:
    """(out-of-fold scores of the training records, scores of ``new_features`` by the model fitted on
    all training records). ``seed`` only draws the folds, so the second part does not depend on it."""
    from sklearn.model_selection import StratifiedKFold

    is_member = np.asarray(is_member, dtype=bool)
    out_of_fold = np.empty(len(features))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    for train, held_out in splitter.split(np.zeros(len(features)), is_member):
        model = fit_convex_classifier(classifier, features[train], is_member[train], c)
        out_of_fold[held_out] = convex_member_scores(model, features[held_out])
    return out_of_fold, convex_member_scores(fit_convex_classifier(classifier, features, is_member, c), new_features)


def learned_scores(features: np.ndarray, is_member: np.ndarray, new_features: np.ndarray, settings: dict,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The attack's classifier (``settings["classifier"]``, default ``svm``) trained on the shadow
    records' ``features`` [R, C, H, W] and labels. Returns (out-of-fold shadow scores, scores of
    ``new_features``, the target records); the target's labels are never seen."""
    classifier = settings.get("classifier", DEFAULT_CLASSIFIER)
    if classifier in CONVEX_CLASSIFIERS:
        return convex_classifier_scores(classifier, features, is_member, new_features, settings["c"], seed)
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
