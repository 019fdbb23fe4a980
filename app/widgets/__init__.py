"""The dock panels and small widgets: legend, model panel, image list, array images."""
