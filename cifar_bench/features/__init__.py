"""The frozen-feature store: VGG16's frozen convolutions computed once per image and view, kept on disk."""
