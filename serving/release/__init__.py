"""Release, verification and shadow comparison of clinical models on SageMaker endpoints.

    clinops release --stack S --model M --package ARN --reason WHY [--shadow] [--dry-run]
    clinops verify  --stack S --model M
    clinops shadow report --stack S --model M

A release is a change to `Pulumi.<stack>.yaml` (the pin), judged by the policy gate and applied by
`pulumi up`; this package decides whether that change is allowed, makes it atomically, and records it in the
evidence log. `verify` checks that the deployed endpoint is what the pin says; `shadow report` compares the
candidate served as a shadow variant with the production variant on the same requests. Exit codes live in
`clinops.exitcodes`.
"""
