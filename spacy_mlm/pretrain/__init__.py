"""MLM pretraining: tokenizer training, model initialisation, corpus, masking and the loop."""
