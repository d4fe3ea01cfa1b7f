"""The pipeline's steps. Each module holds a pure function (data in, result out) and a thin `main()` that reads
and writes files where a SageMaker job finds them (`/opt/ml/...`, every path overridable by an argument):

validate -> split -> train -> evaluate -> fairness -> decide -> card -> register.
"""
