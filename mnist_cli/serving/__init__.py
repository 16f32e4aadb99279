"""`mnist serve`: a page to draw digits on and a JSON API, both running `mnist predict`'s pipeline on one loaded model."""
