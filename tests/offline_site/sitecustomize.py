"""Loaded by every Python started with tests' ``offline_env``: network access fails."""

import socket


def _refuse(*args, **kwargs):
    raise OSError("network access attempted in an offline test")


socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
