"""Recurrent models that pool over time: max and mean over each review's real steps.

The last-state models (``models.rnn``) are the notebook's: a review is whatever the recurrence
still holds at its last token. Johnson & Zhang (2016, "Supervised and semi-supervised text
categorization using LSTM for region embeddings") reach 91.9% on IMDb with a bidirectional LSTM
that max-pools its outputs over time instead, so every position's state can reach the classifier
without surviving to the end. Both readouts skip the padding (``models.recurrent.pool_over_time``),
in either padding mode, and a bidirectional model pools each direction over the same real steps.
"""

from __future__ import annotations

from models.rnn import register_fused

register_fused("lstm_max", "lstm", bidirectional=False, readout="max",
               description="LSTM, outputs max-pooled over the real time steps")
register_fused("lstm_mean", "lstm", bidirectional=False, readout="mean",
               description="LSTM, outputs mean-pooled over the real time steps")
register_fused("gru_max", "gru", bidirectional=False, readout="max",
               description="GRU, outputs max-pooled over the real time steps")
register_fused("gru_mean", "gru", bidirectional=False, readout="mean",
               description="GRU, outputs mean-pooled over the real time steps")
register_fused("bilstm_max", "lstm", bidirectional=True, readout="max",
               description="Bidirectional LSTM, both directions max-pooled over the real time steps")
register_fused("bilstm_mean", "lstm", bidirectional=True, readout="mean",
               description="Bidirectional LSTM, both directions mean-pooled over the real time steps")
register_fused("bigru_max", "gru", bidirectional=True, readout="max",
               description="Bidirectional GRU, both directions max-pooled over the real time steps")
register_fused("bigru_mean", "gru", bidirectional=True, readout="mean",
               description="Bidirectional GRU, both directions mean-pooled over the real time steps")
