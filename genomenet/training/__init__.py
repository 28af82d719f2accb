"""Lightning side of genomenet: the LM module, callbacks, checkpoint I/O and fine-tuning (held-out evaluation lives in
`genomenet.evaluation`)."""
