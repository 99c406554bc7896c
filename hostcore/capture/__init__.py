"""Capture files (pcap, pcapng): read them and find the IP packet inside each frame."""
