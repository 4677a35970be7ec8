"""MLM pretraining: tokenizer training, model initialisation, config, checkpoints and the loop
(its corpus readers, packing and masking: spacy_mlm.mlm_data)."""
