"""Evaluation toolkit: CheXbert's protocol (per-class one-vs-rest F1, weighted F1, kappa, bootstrap CIs),
paired tests between labelers, and the paper's figures. I/O lives in :mod:`.io`; everything else is pure."""
