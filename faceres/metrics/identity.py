"""Identity features for iPrecision / iRecall (Tables 6 and 8): dlib's face-recognition ResNet on aligned chips.

The weights come from the pretrained-weights cache (faceres.weights); how a face crop becomes a 128-d
descriptor (detection, the fallback box, the 5-point alignment) is defined here, beside the other metrics, so
the evaluate stages depend on it and the identity-feature cache is keyed by this code (faceres.metrics.fid).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceres.core.errors import DataError


class IdentityEmbedder:
    """dlib's face-recognition ResNet on face crops: N x H x W x 3 uint8 RGB -> N x 128 float32.

    dlib's network expects a 150 x 150 chip aligned the way ``dlib.get_face_chip`` aligns it (5 landmarks,
    padding 0.25); FFHQ/CelebA-style crops are aligned differently, and resizing them straight to 150 px
    blurs identities together (same/different mean-distance ratio 0.71-0.83 on CelebA against 0.63 here).
    So each crop is re-aligned: dlib's HOG frontal detector finds the face (one upsampling for crops under
    200 px), falling back to a central box (x 20-80 %, y 30-80 %) when it finds none; the 5-point model
    places the landmarks; dlib cuts the chip and embeds it. Same-person distances are mostly below 0.6.

    For a restoration, detection on the restored image would make the chip depend on how well the method
    restored the face (HOG fails more on blurred faces, the pair is then cut differently and looks less alike
    for reasons unrelated to identity), so the evaluation finds the landmarks once on the ground truth
    (:meth:`landmarks`) and cuts every method's restoration of that image, and DEG, with them (``__call__``'s
    ``landmarks``).
    """

    def __init__(self, recognition_model: Path, landmark_model: Path, cache_key: str | None = None):
        import dlib

        self._dlib = dlib
        self._model = dlib.face_recognition_model_v1(str(recognition_model))
        self._landmarks = dlib.shape_predictor(str(landmark_model))
        self._detector = dlib.get_frontal_face_detector()
        self.fallbacks = 0  # crops in which the detector found no face (central box used instead)
        self.cache_key = cache_key  # what its features depend on (feature caches key on it); None: never cached

    def _detect(self, face: np.ndarray) -> tuple[object, bool]:
        """(5-point shape, whether the detector fell back to the central box)."""
        height, width = face.shape[:2]
        boxes = list(self._detector(face, 1 if min(height, width) < 200 else 0))
        if boxes:
            box = max(boxes, key=lambda b: b.area())
        else:
            self.fallbacks += 1
            box = self._dlib.rectangle(int(0.2 * width), int(0.3 * height), int(0.8 * width), int(0.8 * height))
        return self._landmarks(face, box), not boxes

    def landmarks(self, faces: np.ndarray) -> np.ndarray:
        """N x 11 float64: the 5 landmarks (x, y) of each face, then 1.0 where detection fell back, else 0.0."""
        rows = []
        for face in _check_faces(faces):
            shape, fell_back = self._detect(np.ascontiguousarray(face))
            rows.append([c for i in range(shape.num_parts) for c in (shape.part(i).x, shape.part(i).y)] + [float(fell_back)])
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), 11)

    def __call__(self, faces: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """N x 128 descriptors; ``landmarks`` (N x 11, from :meth:`landmarks`) cut the chips, else each face's own."""
        faces = _check_faces(faces)
        images = [np.ascontiguousarray(face) for face in faces]
        if not images:
            return np.zeros((0, 128), dtype=np.float32)
        if landmarks is None:
            shapes = [self._detect(image)[0] for image in images]
        else:
            assert landmarks.shape == (len(images), 11), landmarks.shape
            shapes = [self._shape_from(row, image.shape) for row, image in zip(landmarks, images)]
        detections = []
        for shape in shapes:
            one = self._dlib.full_object_detections()
            one.append(shape)
            detections.append(one)
        descriptors = self._model.compute_face_descriptor(images, detections)
        return np.asarray([np.asarray(d[0]) for d in descriptors], dtype=np.float32).reshape(len(images), 128)

    def _shape_from(self, row: np.ndarray, image_shape: tuple[int, ...]):
        height, width = image_shape[:2]
        points = self._dlib.points()
        for x, y in row[:10].reshape(5, 2):
            points.append(self._dlib.point(int(x), int(y)))
        # the chip is cut from the parts alone; the rectangle is only carried along
        return self._dlib.full_object_detection(self._dlib.rectangle(0, 0, width - 1, height - 1), points)


def _check_faces(faces: np.ndarray) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != np.uint8 or min(faces.shape[1:3]) < 32:
        raise DataError(
            f"identity embedder input has shape {faces.shape} dtype {faces.dtype}; "
            f"expected N x H x W x 3 uint8 RGB face crops, H and W >= 32"
        )
    return faces


def load_identity_embedder() -> IdentityEmbedder:
    """The dlib identity embedder (recognition ResNet + 5-point landmarks) from the weights cache."""
    from faceres.weights.store import verified_file  # imported late: only evaluations with identity features need it

    files, digests = zip(*(verified_file(name) for name in ("dlib_face", "dlib_landmarks")))
    key = "dlib-identity:" + ":".join(digest[:16] for digest in digests)  # the ground-truth feature cache's
    return IdentityEmbedder(*files, cache_key=key)
