"""Everything between a camera and an embedding: frame sources, the TFLite runtime
(LiteRT, with the Edge TPU delegate when one is plugged in) and the extractor."""
