"""Media I/O: safe image and video decode/encode, manifests."""
