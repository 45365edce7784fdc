# genaug (being built)
