"""How many segments an SMS takes (GSM-7 vs UCS-2) and what counts as an opt-out."""
from messaging import sms


def test_plain_spanish_fits_gsm7_up_to_160_in_one_segment():
    assert sms.segments("Hola José, su pago vence mañana.")["encoding"] == "gsm7"
    assert sms.segments("a" * 160) == {"encoding": "gsm7", "units": 160, "segments": 1,
                                       "per_segment": 160}
    assert sms.segments("a" * 161)["segments"] == 2
    assert sms.segments("a" * 306)["segments"] == 2
    assert sms.segments("a" * 307)["segments"] == 3


def test_extension_characters_take_two_septets():
    assert sms.segments("€" * 80) == {"encoding": "gsm7", "units": 160, "segments": 1,
                                      "per_segment": 160}
    assert sms.segments("[" * 81)["segments"] == 2


def test_a_character_outside_gsm7_makes_the_whole_message_ucs2():
    # á is not in GSM 03.38 (only à, é, í... some are): the whole text goes as UCS-2
    assert sms.segments("Pagó á tiempo")["encoding"] == "ucs2"
    assert sms.segments("x" * 69 + "✓") == {"encoding": "ucs2", "units": 70, "segments": 1,
                                            "per_segment": 70}
    assert sms.segments("x" * 70 + "✓")["segments"] == 2
    assert sms.segments("x" * 133 + "✓")["segments"] == 2
    assert sms.segments("x" * 134 + "✓")["segments"] == 3


def test_an_emoji_counts_two_utf16_units():
    assert sms.segments("😀")["units"] == 2
    assert sms.segments("😀" * 35)["segments"] == 1
    assert sms.segments("😀" * 36)["segments"] == 2


def test_opt_out_is_the_word_alone():
    words = sms.opt_out_words("BAJA, stop ,")
    assert words == {"BAJA", "STOP"}
    assert sms.is_opt_out(" baja ", words) and sms.is_opt_out("Stop.", words)
    assert not sms.is_opt_out("no me den de baja", words)
    assert not sms.is_opt_out("", words)
