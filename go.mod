module github.com/emailclient/emailclient-infra

go 1.26.8

require (
	github.com/blang/semver v3.5.1+incompatible // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/pulumi/pulumi-docker/sdk/v4 v4.10.0 // indirect
	github.com/pulumi/pulumi-random/sdk/v4 v4.18.0 // indirect
	github.com/pulumi/pulumi/sdk/v3 v3.200.0 // indirect
	github.com/redis/go-redis/v9 v9.17.2 // indirect
	github.com/stretchr/testify v1.11.1 // indirect
)
