"""The Rekognition backend: request shapes and response mapping checked against botocore's
real API model (Stubber) and a real recorded response, then against moto's server."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from PIL import Image

from rudolph.analysis import analyze
from rudolph.backends.rekognition import BYTES_LIMIT, RekognitionAnalyzer, map_faces
from rudolph.errors import AnalyzerError, TransientAnalyzerError
from rudolph.ratelimit import NO_LIMIT
from rudolph.record import Box
from rudolph.settings import Settings
from rudolph.source import ImageInput, S3Location
from rudolph.vocabulary import FEATURES
from tests.photos import encode, exif_rotated_jpeg, load

SETTINGS = Settings(min_confidence=55, max_labels=10, face_attributes="ALL")
CAT = S3Location(bucket="reindeer-dropzone", key="pets/kitten 1.jpg", size=58_364)

# Shaped like DetectLabels answers for the blog post's car photo (Stubber validates it).
LABELS_RESPONSE: dict[str, Any] = {
    "Labels": [
        {
            "Name": "Car",
            "Confidence": 97.1,
            "Instances": [],
            "Parents": [{"Name": "Vehicle"}, {"Name": "Transportation"}],
            "Aliases": [{"Name": "Automobile"}],
            "Categories": [{"Name": "Vehicles and Automotive"}],
        },
        {
            "Name": "Vehicle",
            "Confidence": 97.1,
            "Instances": [],
            "Parents": [{"Name": "Transportation"}],
            "Aliases": [],
            "Categories": [],
        },
        {"Name": "Spoke", "Confidence": 40.2, "Instances": [], "Parents": [], "Aliases": []},
    ],
    "LabelModelVersion": "3.0",
}
# Shaped like DetectLabels (API 3.0) on a street photo with two people and a dog: every
# object label carries Instances, a box and a confidence each (and dominant colours, which the
# record does not keep); scene labels and parents carry none.
PEOPLE_AND_DOG_RESPONSE: dict[str, Any] = {
    "Labels": [
        {
            "Name": "Person",
            "Confidence": 99.6,
            "Instances": [
                {
                    "BoundingBox": {"Width": 0.21, "Height": 0.78, "Left": 0.12, "Top": 0.18},
                    "Confidence": 99.6,
                    "DominantColors": [
                        {
                            "Red": 40,
                            "Green": 44,
                            "Blue": 52,
                            "HexCode": "282C34",
                            "CSSColor": "black",
                            "SimplifiedColor": "black",
                            "PixelPercent": 31.2,
                        }
                    ],
                },
                {
                    "BoundingBox": {"Width": 0.18, "Height": 0.71, "Left": 0.55, "Top": 0.22},
                    "Confidence": 98.3,
                },
                {
                    "BoundingBox": {"Width": 0.02, "Height": 0.05, "Left": 0.9, "Top": 0.4},
                    "Confidence": 41.0,
                },
            ],
            "Parents": [],
            "Aliases": [{"Name": "Human"}],
            "Categories": [{"Name": "Person Description"}],
        },
        {
            "Name": "Dog",
            "Confidence": 97.9,
            "Instances": [
                {
                    "BoundingBox": {"Width": 0.16, "Height": 0.2, "Left": 0.36, "Top": 0.72},
                    "Confidence": 97.9,
                }
            ],
            "Parents": [{"Name": "Canine"}, {"Name": "Mammal"}, {"Name": "Animal"}],
            "Aliases": [{"Name": "Pet"}],
            "Categories": [{"Name": "Animals and Pets"}],
        },
        {
            "Name": "Canine",
            "Confidence": 97.9,
            "Instances": [],
            "Parents": [{"Name": "Mammal"}, {"Name": "Animal"}],
        },
        {"Name": "Outdoors", "Confidence": 88.0, "Instances": [], "Parents": []},
    ],
    "LabelModelVersion": "3.0",
}
TEXT_RESPONSE: dict[str, Any] = {
    "TextDetections": [
        {
            "DetectedText": "NDV 9IF",
            "Type": "LINE",
            "Id": 0,
            "Confidence": 96.1,
            "Geometry": {
                "BoundingBox": {"Width": 0.2, "Height": 0.07, "Left": 0.41, "Top": 0.46},
                "Polygon": [{"X": 0.41, "Y": 0.46}],
            },
        },
        {
            "DetectedText": "NDV",
            "Type": "WORD",
            "Id": 1,
            "ParentId": 0,
            "Confidence": 96.5,
            "Geometry": {"BoundingBox": {"Width": 0.1, "Height": 0.07, "Left": 0.41, "Top": 0.46}},
        },
        {
            "DetectedText": "9IF",
            "Type": "WORD",
            "Id": 2,
            "ParentId": 0,
            "Confidence": 95.7,
            "Geometry": {"BoundingBox": {"Width": 0.09, "Height": 0.07, "Left": 0.52, "Top": 0.46}},
        },
    ],
    "TextModelVersion": "3.0",
}


@pytest.fixture
def faces_response(fixtures_dir: Path) -> dict[str, Any]:
    return json.loads(
        (fixtures_dir / "rekognition" / "detect_faces_three_people_2018.json").read_text()
    )


@pytest.fixture
def stubbed() -> Any:
    client = boto3.client("rekognition", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield RekognitionAnalyzer(SETTINGS, client=client, limiter=NO_LIMIT), stubber
        stubber.assert_no_pending_responses()


def _s3_image() -> ImageInput:
    def fetch() -> bytes:
        raise AssertionError("an S3 JPEG must be passed by reference, never downloaded")

    return ImageInput.from_s3(CAT, fetch)


S3_PARAM = {"S3Object": {"Bucket": CAT.bucket, "Name": CAT.key}}


def test_faces_map_field_by_field_from_the_real_response(
    stubbed: Any, faces_response: dict
) -> None:
    analyzer, stubber = stubbed
    stubber.add_response(
        "detect_faces", faces_response, expected_params={"Image": S3_PARAM, "Attributes": ["ALL"]}
    )
    faces = analyzer.faces(_s3_image())
    details = faces_response["FaceDetails"]
    assert len(faces) == len(details) == 3
    for face, detail in zip(faces, details, strict=True):
        assert face.confidence == detail["Confidence"]
        box = detail["BoundingBox"]
        assert (face.box.left, face.box.top, face.box.width, face.box.height) == (
            box["Left"],
            box["Top"],
            box["Width"],
            box["Height"],
        )
        assert [(m.type, m.x, m.y) for m in face.landmarks] == [
            (m["Type"], m["X"], m["Y"]) for m in detail["Landmarks"]
        ]
        assert len(face.landmarks) == 30
        # Smile, Emotions, Pose and Quality have typed fields of their own, field by field
        assert face.smile is not None
        assert (face.smile.value, face.smile.confidence) == (
            detail["Smile"]["Value"],
            detail["Smile"]["Confidence"],
        )
        assert face.emotions is not None
        assert sorted((e.type, e.confidence) for e in face.emotions) == sorted(
            (e["Type"], e["Confidence"]) for e in detail["Emotions"]
        )
        confidences = [e.confidence for e in face.emotions]
        assert confidences == sorted(confidences, reverse=True)  # most likely first
        assert face.pose is not None and face.quality is not None
        assert (face.pose.roll, face.pose.yaw, face.pose.pitch) == (
            detail["Pose"]["Roll"],
            detail["Pose"]["Yaw"],
            detail["Pose"]["Pitch"],
        )
        assert (face.quality.brightness, face.quality.sharpness) == (
            detail["Quality"]["Brightness"],
            detail["Quality"]["Sharpness"],
        )
        # the rest (age range, glasses, beard...) kept as the service returned it
        mapped = {"BoundingBox", "Confidence", "Landmarks", "Smile", "Emotions", "Pose", "Quality"}
        assert face.attributes == {k: v for k, v in detail.items() if k not in mapped}
        assert {"AgeRange", "Gender", "Eyeglasses"} <= set(face.attributes)
    # the three smile: 71.5%, 93.0% and 96.1% sure; the first is happiest of its emotions
    assert [f.smile.value for f in faces if f.smile] == [True, True, True]
    assert faces[0].emotions and faces[0].emotions[0].type == "HAPPY"


def test_by_default_detect_faces_is_asked_for_smile_and_emotions_too(
    faces_response: dict,
) -> None:
    """DEFAULT gives box, landmarks, Pose and Quality; SMILE and EMOTIONS are named (the
    Stubber checks the values against the service model). The reply carries only those."""
    client = boto3.client("rekognition", region_name="us-east-1")
    analyzer = RekognitionAnalyzer(
        Settings(min_confidence=55, face_attributes="DEFAULT"), client=client, limiter=NO_LIMIT
    )
    kept = {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality", "Smile", "Emotions"}
    reply = {
        "FaceDetails": [
            {k: v for k, v in detail.items() if k in kept}
            for detail in faces_response["FaceDetails"]
        ]
    }
    reply["FaceDetails"][0]["Emotions"].append({"Type": "UNKNOWN", "Confidence": 0.5})
    with Stubber(client) as stubber:
        stubber.add_response(
            "detect_faces",
            reply,
            expected_params={"Image": S3_PARAM, "Attributes": ["DEFAULT", "SMILE", "EMOTIONS"]},
        )
        faces = analyzer.faces(_s3_image())
        stubber.assert_no_pending_responses()
    assert len(faces) == 3
    assert all(f.attributes == {} for f in faces)
    assert faces[0].emotions is not None and len(faces[0].emotions) == 8
    assert ("UNKNOWN", 0.5) in [(e.type, e.confidence) for e in faces[0].emotions]
    without = {"FaceDetails": [{k: v for k, v in reply["FaceDetails"][1].items() if k not in (
        "Smile", "Emotions", "Pose", "Quality")}]}  # fmt: skip
    (bare,) = map_faces(without, 0)
    assert (bare.smile, bare.emotions, bare.pose, bare.quality) == (None, None, None, None)
    assert set(bare.model_dump()) == {"confidence", "box", "landmarks", "attributes"}


def test_labels_keep_parents_and_aliases_as_name_lists(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    stubber.add_response(
        "detect_labels",
        LABELS_RESPONSE,
        expected_params={"Image": S3_PARAM, "MaxLabels": 10, "MinConfidence": 55},
    )
    labels = analyzer.labels(_s3_image())
    assert [(label.name, label.confidence, label.parents, label.aliases) for label in labels] == [
        ("Car", 97.1, ["Vehicle", "Transportation"], ["Automobile"]),
        ("Vehicle", 97.1, ["Transportation"], []),
    ]  # Spoke at 40% is under RUDOLPH_MIN_CONFIDENCE
    assert analyzer.version("labels") == "rekognition 3.0"


def test_label_instances_keep_their_boxes_and_confidences(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    stubber.add_response("detect_labels", PEOPLE_AND_DOG_RESPONSE)
    labels = {label.name: label for label in analyzer.labels(_s3_image())}
    people = labels["Person"].instances
    # The 41% instance is under RUDOLPH_MIN_CONFIDENCE, like a label would be.
    assert [(i.confidence, i.box) for i in people] == [
        (99.6, Box(left=0.12, top=0.18, width=0.21, height=0.78)),
        (98.3, Box(left=0.55, top=0.22, width=0.18, height=0.71)),
    ]
    (dog,) = labels["Dog"].instances
    assert dog.box == Box(left=0.36, top=0.72, width=0.16, height=0.2)
    assert labels["Canine"].instances == labels["Outdoors"].instances == []
    # The record (what `rudolph analyze --json` prints) has the local backend's shape.
    stubber.add_response("detect_labels", PEOPLE_AND_DOG_RESPONSE)
    record = json.loads(analyze(_s3_image(), analyzer, ("labels",)).model_dump_json())
    person = next(label for label in record["labels"] if label["name"] == "Person")
    assert person["instances"][0] == {
        "confidence": 99.6,
        "box": {"left": 0.12, "top": 0.18, "width": 0.21, "height": 0.78},
    }


def test_text_keeps_lines_words_and_their_parents(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    stubber.add_response("detect_text", TEXT_RESPONSE, expected_params={"Image": S3_PARAM})
    text = analyzer.text(_s3_image())
    assert [(t.text, t.type, t.id, t.parent_id) for t in text] == [
        ("NDV 9IF", "LINE", 0, None),
        ("NDV", "WORD", 1, 0),
        ("9IF", "WORD", 2, 0),
    ]
    assert text[0].confidence == 96.1
    assert text[0].box.model_dump() == {"left": 0.41, "top": 0.46, "width": 0.2, "height": 0.07}


def test_a_small_local_jpeg_is_sent_as_it_is(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    data = encode(load("chelsea"), "JPEG")
    stubber.add_response("detect_text", TEXT_RESPONSE, expected_params={"Image": {"Bytes": data}})
    analyzer.text(ImageInput.from_bytes(data))


def test_other_formats_are_converted_to_jpeg_and_the_record_says_so(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    webp = encode(load("chelsea"), "WEBP")
    sent: list[bytes] = []

    def capture(**params: Any) -> None:
        sent.append(params["Image"]["Bytes"])

    stubber.add_response("detect_text", TEXT_RESPONSE)
    stubber.add_response("detect_labels", LABELS_RESPONSE)
    analyzer.client.meta.events.register(
        "provide-client-params.rekognition.*", lambda params, **_: capture(**params)
    )
    image = ImageInput.from_bytes(webp, name="kitten.webp")
    record = analyze(image, analyzer, ("text", "labels"))
    assert len(sent) == 2 and sent[0] is sent[1], "both features reuse one conversion"
    assert Image.open(io.BytesIO(sent[0])).format == "JPEG"
    assert record.analyzer is not None
    assert record.analyzer.notes == [
        f"sent to Rekognition as a 451x300 JPEG of {len(sent[0]) / 1e6:.1f} MB "
        f"(original: WEBP, 451x300 px, {len(webp) / 1e6:.1f} MB)"
    ]


def test_exif_rotated_photos_are_sent_upright(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    stubber.add_response("detect_text", TEXT_RESPONSE)
    image = ImageInput.from_bytes(exif_rotated_jpeg(load("chelsea")))
    analyzer.text(image)
    (note,) = analyzer.notes(image)
    assert note.startswith("sent to Rekognition as a 451x300 JPEG")


def test_images_over_5_mb_are_shrunk_under_the_bytes_limit(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    noise = Image.effect_noise((3000, 2500), 120).convert("RGB")  # incompressible
    png = encode(noise, "PNG", compress_level=0)  # zlib would only take 3 s to gain nothing
    assert len(png) > BYTES_LIMIT
    stubber.add_response("detect_text", TEXT_RESPONSE)
    image = ImageInput.from_bytes(png)
    analyzer.text(image)
    sent = image.prepared["rekognition"][0]["Bytes"]
    assert len(sent) <= BYTES_LIMIT
    assert "original: PNG, 3000x2500 px" in analyzer.notes(image)[0]


def test_large_or_unusual_s3_objects_are_downloaded_and_converted(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    webp = encode(load("chelsea"), "WEBP")
    location = S3Location(bucket="b", key="cat.webp", size=len(webp))
    stubber.add_response("detect_text", TEXT_RESPONSE)
    image = ImageInput.from_s3(location, lambda: webp)
    analyzer.text(image)
    assert "Bytes" in image.prepared["rekognition"][0]


def test_permanent_errors_say_what_to_do(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    stubber.add_client_error(
        "detect_labels",
        "InvalidImageFormatException",
        "Request has invalid image format",
        http_status_code=400,
    )
    with pytest.raises(AnalyzerError) as caught:  # bytes already converted: nothing to retry
        analyzer.labels(ImageInput.from_bytes(encode(load("chelsea"), "JPEG")))
    assert not caught.value.retryable
    assert caught.value.code == "InvalidImageFormat"
    assert str(caught.value) == (
        "Request has invalid image format; Rekognition accepts JPEG and PNG only: convert the image"
    )


def test_throttling_is_transient(stubbed: Any) -> None:
    analyzer, stubber = stubbed
    stubber.add_client_error(
        "detect_faces",
        "ProvisionedThroughputExceededException",
        "Provisioned rate exceeded",
        http_status_code=400,
    )
    with pytest.raises(TransientAnalyzerError) as caught:
        analyzer.faces(_s3_image())
    assert caught.value.retryable and caught.value.code == "ProvisionedThroughputExceeded"


def test_a_failing_feature_does_not_sink_the_others(stubbed: Any, faces_response: dict) -> None:
    analyzer, stubber = stubbed
    stubber.add_response("detect_labels", LABELS_RESPONSE)
    stubber.add_response("detect_text", TEXT_RESPONSE)
    stubber.add_client_error("detect_faces", "AccessDeniedException", "Not authorized")
    record = analyze(_s3_image(), analyzer, FEATURES)
    assert record.status == "partial"
    assert record.errors == {
        "faces": "AccessDenied: Not authorized; grant rekognition:Detect* and s3:GetObject to "
        "the worker's role"
    }
    # Text found by DetectText becomes a label too, as with the local backend.
    assert [label.name for label in record.labels] == ["Car", "Vehicle", "Text"]
    assert record.bucket == CAT.bucket and record.key == CAT.key


# -- against moto's server: real HTTP, real S3 ----------------------------------------------


@pytest.fixture
def moto_settings(moto_url: str, redis_url: str) -> Settings:
    # The analyzer's rate limiter uses the tests' own Redis.
    return Settings(aws_endpoint_url=moto_url, analyzer="rekognition", redis_url=redis_url)


def test_moto_server_labels_and_text_from_an_s3_object(moto_settings: Settings) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_settings.aws_endpoint_url, region_name="us-east-1")
    s3.create_bucket(Bucket="reindeer-dropzone")
    s3.put_object(
        Bucket="reindeer-dropzone", Key="cats/chelsea.jpg", Body=encode(load("chelsea"), "JPEG")
    )
    analyzer = RekognitionAnalyzer(moto_settings)
    image = ImageInput.from_s3(
        S3Location("reindeer-dropzone", "cats/chelsea.jpg"),
        lambda: pytest.fail("must not download"),
    )  # type: ignore[arg-type]
    record = analyze(image, analyzer, ("labels", "text"))
    assert record.status == "done", record.errors
    # moto's answers are canned: what matters is the round trip through the real HTTP API.
    assert "Mobile Phone" in [label.name for label in record.labels]
    lines = [t for t in record.text if t.type == "LINE"]
    words = [t for t in record.text if t.type == "WORD"]
    assert lines and words and all(w.parent_id is not None for w in words)


def test_moto_server_with_local_bytes(moto_settings: Settings) -> None:
    analyzer = RekognitionAnalyzer(moto_settings)
    record = analyze(ImageInput.from_bytes(encode(load("coffee"), "PNG")), analyzer, ("labels",))
    assert record.status == "done", record.errors
    assert record.labels


def test_moto_server_faces_unimplemented_is_a_transient_error(moto_settings: Settings) -> None:
    # moto answers DetectFaces with HTTP 500: the record keeps a retryable error, not a crash.
    analyzer = RekognitionAnalyzer(moto_settings)
    with pytest.raises(TransientAnalyzerError):
        analyzer.faces(ImageInput.from_bytes(encode(load("coffee"), "JPEG")))


def test_an_s3_object_rekognition_refuses_is_sent_again_as_converted_bytes(stubbed: Any) -> None:
    # A CMYK JPEG, or one over 10,000 px, is refused by reference; a converted copy is not.
    analyzer, stubber = stubbed
    cmyk = encode(load("chelsea").convert("CMYK"), "JPEG")
    stubber.add_client_error(
        "detect_text",
        "InvalidImageFormatException",
        "Request has invalid image format",
        http_status_code=400,
        expected_params={"Image": S3_PARAM},
    )
    stubber.add_response("detect_text", TEXT_RESPONSE)
    stubber.add_response("detect_labels", LABELS_RESPONSE)
    image = ImageInput.from_s3(CAT, lambda: cmyk)
    record = analyze(image, analyzer, ("text", "labels"))
    assert record.status == "done", record.errors
    sent = image.prepared["rekognition"][0]["Bytes"]
    assert Image.open(io.BytesIO(sent)).mode == "RGB"
    assert analyzer.notes(image)[0].startswith("sent to Rekognition as a 451x300 JPEG")
