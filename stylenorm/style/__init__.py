"""Fast neural style transfer: TransformerNet (net), VGG16 perceptual loss (loss), training
(train), stylizing (stylize) and tiled inference with whole-image InstanceNorm statistics (tiling)."""
