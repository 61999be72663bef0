"""The service: ``FaceSearch`` and the options values its operations take.

``facade.py`` wires the parts; ``catalogue.py`` (collections, persons, groups, faces),
``enrolment.py`` (photos -> stored faces), ``searcher.py`` (identify, search, identify-all,
verify, detect), ``follower.py`` (the index kept current from the change log), ``models.py``
(packs and the analyzer) and ``options.py`` (one frozen value per operation family).
"""

from facesearch.service.catalogue import CollectionRef
from facesearch.service.facade import FaceSearch
from facesearch.service.options import (
    DetectOptions,
    EnrolOptions,
    IdentifyAllOptions,
    SearchOptions,
    VerifyOptions,
)

__all__ = [
    "CollectionRef",
    "DetectOptions",
    "EnrolOptions",
    "FaceSearch",
    "IdentifyAllOptions",
    "SearchOptions",
    "VerifyOptions",
]
