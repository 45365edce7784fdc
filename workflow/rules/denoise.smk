# denoise (being built)
