"""Topics found, not only given. Open battles and uploaded prompt files carry no category, so the
ladder per category has nothing to group by. Here the prompts are embedded (the offline MiniLM of
the data builder), clustered by scikit-learn's HDBSCAN (no number of topics to guess; prompts that
belong nowhere stay "unclustered"), and each cluster is named by its most distinctive words
(class-based TF-IDF, as BERTopic names topics: a word's frequency in the cluster against its
frequency in all clusters). The per-topic ladders follow the per-category ones (provisional
rules apply); `layout` places every prompt on a 2-D map (PCA of the embeddings) for the plot."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

MIN_CLUSTER = 5  # prompts a topic needs (HDBSCAN's min_cluster_size)
UNCLUSTERED = "unclustered"
STOP = set("""a an the and or but if of to in on at for with about from by as is are was were be been being it its this
that these those i you he she we they me my your our their what which who whom how why when where can could would should
will shall do does did done have has had not no yes so than then there here into out up down over under again more most
some any each all both few other such only own same too very just also please write give tell make explain describe
list show use using one two three""".split())


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z'-]{2,}", text.lower()) if w not in STOP]


def cluster(vectors: np.ndarray, min_cluster: int = MIN_CLUSTER) -> np.ndarray:
    """A topic number per prompt (-1: unclustered), by HDBSCAN on the unit vectors."""
    from sklearn.cluster import HDBSCAN

    if len(vectors) < max(2, min_cluster):
        return np.full(len(vectors), -1)
    # min_samples 1: a prompt's density from its nearest neighbour, so a few hundred prompts still form topics
    return HDBSCAN(min_cluster_size=min_cluster, min_samples=1, metric="euclidean", copy=True).fit_predict(vectors)


def names(texts: list[str], labels: np.ndarray, top: int = 3) -> dict[int, str]:
    """Each topic's name: its `top` words by class-based TF-IDF (tf within the topic times
    log(1 + mean words per topic / the word's count over all topics))."""
    topics = sorted(set(labels.tolist()) - {-1})
    counts = {t: Counter(w for text, label in zip(texts, labels) if label == t for w in words(text)) for t in topics}
    overall = Counter()
    for c in counts.values():
        overall.update(c)
    mean_words = np.mean([sum(c.values()) for c in counts.values()]) if counts else 1.0
    out = {}
    for t, c in counts.items():
        total = sum(c.values()) or 1
        score = {w: (n / total) * np.log(1 + mean_words / overall[w]) for w, n in c.items()}
        out[t] = " / ".join(w for w, _ in sorted(score.items(), key=lambda item: (-item[1], item[0]))[:top]) or f"topic {t}"
    return out


def topics(texts: list[str], embed, min_cluster: int = MIN_CLUSTER) -> dict:
    """{"labels": topic name per text (or "unclustered"), "topics": [{name, prompts}], "map": [[x, y]]}."""
    vectors = np.asarray(embed(texts)) if texts else np.zeros((0, 2))
    labels = cluster(vectors, min_cluster)
    named = names(texts, labels)
    shown = [named.get(int(label), UNCLUSTERED) for label in labels]
    return {"labels": shown, "topics": [{"name": name, "prompts": shown.count(name)} for name in named.values()],
            "unclustered": shown.count(UNCLUSTERED), "map": layout(vectors).round(4).tolist()}


def layout(vectors: np.ndarray) -> np.ndarray:
    """2-D coordinates of the prompts (PCA of the embeddings), for the map."""
    from sklearn.decomposition import PCA

    if len(vectors) < 3:
        return np.zeros((len(vectors), 2))
    return PCA(n_components=2, random_state=0).fit_transform(vectors)
