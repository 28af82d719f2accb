"""Lightning side of genomenet: the LM module, callbacks, checkpoint I/O and held-out evaluation."""
