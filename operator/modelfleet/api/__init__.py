"""The resource: the ModelDeployment spec and status as pydantic models, and the CRD generated
from them. Imports nothing else of the operator."""
