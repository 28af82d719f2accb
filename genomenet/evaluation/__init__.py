"""Scoring trained models: the LM held-out report (bits per base beside a Markov baseline, by preceding context and
kind of target) and the metrics shared by the downstream tasks."""
