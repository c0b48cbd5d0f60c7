"""IMAGEs: build each ENGINE's image from images/<engine>/, tagged by content; base images; prerequisites."""
