import pytest
from nameko.exceptions import deserialize, serialize

from recaudo_common import errors


@pytest.mark.parametrize("cls", errors.EXPECTED)
def test_domain_errors_cross_the_wire_typed_with_their_fields(cls):
    original = cls("Monto inválido", {"amount": ["Debe ser positivo"]})
    back = deserialize(serialize(original))
    assert type(back) is cls
    assert back.message == "Monto inválido"
    assert back.fields == {"amount": ["Debe ser positivo"]}
    assert back.as_dict()["code"] == cls.code


def test_throttled_carries_its_retry_after_across_the_wire():
    back = deserialize(serialize(errors.Throttled("Espere", {"username": ["Espere"]}, 42.2)))
    assert type(back) is errors.Throttled and back.retry_after == 42
    assert back.fields == {"username": ["Espere"]}
    assert deserialize(serialize(errors.Throttled("Espere"))).retry_after is None
