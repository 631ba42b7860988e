"""boto3's download_file (what the original agent used) of one object from the local stack, for the
benchmarks: the same object, endpoint and credentials as the agent and curl. Run under Debian's
/usr/bin/python3 (python3-boto3). argv: endpoint region bucket key file access_key secret [ca_bundle]."""
import sys

import boto3
from botocore.config import Config

endpoint, region, bucket, key, path, access_key, secret = sys.argv[1:8]
ca_bundle = sys.argv[8] if len(sys.argv) > 8 else None
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name=region,
    aws_access_key_id=access_key,
    aws_secret_access_key=secret,
    verify=ca_bundle if ca_bundle else True,
    config=Config(s3={"addressing_style": "path"}),
)
s3.download_file(bucket, key, path)
