"""The cluster client every component except the apiserver uses."""

from nanokube.client.informer import Informer, object_key
from nanokube.client.rest import ApiClient, client_from_kubeconfig, resource_path, wait_until_ready

__all__ = ["ApiClient", "Informer", "client_from_kubeconfig", "object_key", "resource_path", "wait_until_ready"]
