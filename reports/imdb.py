"""IMDb's declaration for the reports: its published results, its figures in ``plots/`` itself.

The one module of :mod:`reports` that names the IMDb task. Its runs get the per-architecture
sections (results, recommendation, paired comparisons, plots, how it was measured), which need
no declaration; what they cannot know from the records is declared here.
"""

from __future__ import annotations

from reports.sections import Published, TaskReport, register_task_report

#: The task name of IMDb's runs (also the task of a record that names none:
#: ``bench.results.records.DEFAULT_TASK``).
IMDB_TASK = "imdb"

#: Published results on IMDb, for orientation only (not measured here).
PUBLISHED_RESULTS: tuple[Published, ...] = (
    (
        "TF-IDF + logistic regression",
        "bag of word n-grams on the standard 25k/25k split; about 88% with unigrams, up to about "
        "91% with uni- and bigrams, depending on the n-gram range and regularisation",
        "≈ 88–91%",
    ),
    (
        "fastText-style model (Keras `imdb_fasttext` example; Joulin et al. 2016)",
        "averaged embeddings of uni- and bigrams, 20,000 words, max length 400, embedding 50, "
        "5 epochs",
        "90.6%",
    ),
    (
        "Maas et al. 2011 (the dataset paper)",
        "learned word vectors plus bag of words, also using the 50,000 unlabeled reviews",
        "88.9%",
    ),
    (
        "Johnson & Zhang 2016, *Supervised and Semi-Supervised Text Categorization using LSTM for "
        "Region Embeddings* (oh-2LSTMp)",
        "one-hot inputs (no word vectors), bidirectional LSTM with max pooling over time, whole "
        "reviews, trained on the 25,000 labeled reviews only (no unlabeled data)",
        "91.9%",
    ),
    (
        "NBSVM-bi (Wang & Manning 2012, *Baselines and Bigrams*)",
        "naive-Bayes log-count-ratio features of uni- and bigrams fed to an SVM",
        "91.2%",
    ),
    (
        "bentrevett/pytorch-sentiment-analysis, 2-layer BiLSTM",
        "GloVe 100-d initialised embeddings, hidden 256, dropout 0.5, packed sequences, 5 epochs, "
        "validation split carved from train; the figure varies across versions of the tutorial",
        "85.3–86.2%",
    ),
)

register_task_report(TaskReport(
    IMDB_TASK,
    published=PUBLISHED_RESULTS,
    published_setting="usually the full 25,000-review training set",
    plot_prefix="",  # its figures keep the names they had before tasks existed: plots/<name>
))  # fmt: skip
