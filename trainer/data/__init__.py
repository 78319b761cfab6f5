"""From folders to pixels: walking folders safely, finding the two classes, decoding images (with
the one preprocessing path shared by training and prediction), the decode cache and the splits."""
