"""What a trial reads: source photos (``sources``), labelled sets for the probe and the supervised
baseline (``labelled``), and a whole image folder streamed for the full-dataset arm (``folder_stream``)."""
