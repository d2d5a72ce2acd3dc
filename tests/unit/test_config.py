from recaudo_common.config import ENV, Settings, from_env


def test_defaults_point_at_the_local_machine():
    cfg = from_env({})
    assert cfg == Settings()
    assert cfg.database_url.startswith("postgresql+psycopg://")
    assert cfg.nameko == {"AMQP_URI": cfg.amqp_uri, "serializer": "json",
                          "WEB_SERVER_ADDRESS": cfg.sms_callback_address}


def test_environment_overrides_with_types():
    cfg = from_env({"RECAUDO_DEMO": "0", "RECAUDO_GATEWAY_PORT": "9999",
                    "RECAUDO_RPC_TIMEOUT": "2.5", "RECAUDO_LOG_FORMAT": "json"})
    assert cfg.demo is False and cfg.gateway_port == 9999
    assert cfg.rpc_timeout == 2.5 and cfg.log_format == "json"


def test_every_variable_names_a_setting():
    fields = Settings.__dataclass_fields__
    assert all(attr in fields for attr in ENV.values())
    assert all(var.startswith("RECAUDO_") for var in ENV)
