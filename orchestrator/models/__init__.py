"""Models and evaluation texts: the catalogues, the local model store, downloads, tokenizing texts."""
