import pytest

from operators.backup.locations import LocationError, parse_credentials_file, storage_config


def test_parses_aws_credentials_file():
    text = "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n"
    assert parse_credentials_file(text) == ("AK", "SK")


@pytest.mark.parametrize(("text", "message"), [
    ("not ini at all", "not an AWS credentials file"),
    ("[other]\naws_access_key_id=a\naws_secret_access_key=b\n", r"no \[default\] profile"),
    ("[default]\naws_access_key_id=a\n", "needs aws_access_key_id and aws_secret_access_key"),
])
def test_bad_credentials_are_explained_without_values(text, message):
    with pytest.raises(LocationError, match=message) as info:
        parse_credentials_file(text)
    assert "aws_access_key_id=a" not in str(info.value)


def test_storage_config_from_spec():
    spec = {
        "objectStorage": {"bucket": "b", "prefix": "p"},
        "config": {"s3Url": "http://minio:9000", "s3ForcePathStyle": "true", "region": "eu-west-1"},
    }
    config = storage_config(spec, ("AK", "SK"))
    assert (config.bucket, config.prefix, config.endpoint_url, config.region) == ("b", "p", "http://minio:9000",
                                                                                   "eu-west-1")
    assert config.force_path_style and not config.insecure_skip_tls_verify
    assert "SK" not in repr(config)
