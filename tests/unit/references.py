"""Reference objects as another stack would hand them over: plain ids, no resources behind them."""

from seaport import CertificateAuthorityReference, ClusterReference, DiscoveryReference, NetworkReference

VPC_ID = "vpc-0123456789abcdef0"
PUBLIC_SUBNETS = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
PRIVATE_SUBNETS = ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"]
INSTANCE_SG = "sg-0123456789abcdef0"
CLUSTER_ARN = "arn:aws:ecs:us-east-1:123456789012:cluster/main-1234567"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf"
REGISTRAR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/registrar@sha256:" + "a" * 64

NETWORK: NetworkReference = {
    "vpc_id": VPC_ID,
    "public_subnet_ids": PUBLIC_SUBNETS,
    "instance_subnet_ids": PRIVATE_SUBNETS,
    "instances_need_public_ip": False,
}
CLUSTER: ClusterReference = {
    "arn": CLUSTER_ARN,
    "name": "main-1234567",
    "capacity_provider": "main-capacity-1234567",
    "instance_security_group_id": INSTANCE_SG,
    "network": NETWORK,
    "dedicated_instances": ["broker"],  # what a container-mode broker needs
}
CA_CERT = "-----BEGIN CERTIFICATE-----\nMIIBtestca\n-----END CERTIFICATE-----\n"
CA: CertificateAuthorityReference = {
    "certificate_pem": CA_CERT,
    "private_key_pem": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA\n-----END EC PRIVATE KEY-----\n",
    "certificate_validity_days": 365,
}
DISCOVERY: DiscoveryReference = {
    "agent_address": "consul-agent:8500",
    "agent_hosts": {"consul-agent": "172.17.0.1"},
    "reader_token_secret_arn": SECRET_ARN.format("reader"),
    "registrar_image": REGISTRAR_IMAGE,
    "registrar_token_secret_arn": SECRET_ARN.format("registrar"),
    "broker_token_secret_arn": SECRET_ARN.format("broker"),
}
