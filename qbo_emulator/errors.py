"""QBO faults: an exception carrying what the ``Fault`` envelope needs."""


class QboFault(Exception):
    """A QBO error; ``code`` is a string on the wire, as at QBO."""

    def __init__(self, code: int, message: str, detail: str = "", *, element: str = "", status: int = 400):
        super().__init__(f"{code} {message}: {detail}")
        self.code = str(code)
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = "ValidationFault" if status < 500 else "SystemFault"

    def fault(self) -> dict:
        return {
            "Error": [
                {"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}
            ],
            "type": self.fault_type,
        }


def object_not_found(entity: str, object_id: str) -> QboFault:
    return QboFault(
        610,
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. ({entity} Id={object_id})",
    )


def invalid_reference(field: str, entity: str, object_id: str) -> QboFault:
    return QboFault(
        2500,
        "Invalid Reference Id",
        f"Invalid Reference Id : {entity} Id={object_id} in {field} does not exist",
        element=field,
    )


def required_param_missing(field: str) -> QboFault:
    return QboFault(
        2020,
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {field} is missing in the request",
        element=field,
    )


def invalid_value(field: str, value: object) -> QboFault:
    return QboFault(
        2010,
        "Request has invalid or unsupported property",
        f"Property Name:{field} value {value!r}",
        element=field,
    )


def duplicate_name(existing_id: str) -> QboFault:
    return QboFault(
        6240, "Duplicate Name Exists Error", f"The name supplied already exists. : Id={existing_id}"
    )


def stale_object(entity: str, object_id: str) -> QboFault:
    return QboFault(
        5010,
        "Stale Object Error",
        "Stale Object Error : You and another user were working on the same thing. "
        f"({entity} Id={object_id} has a newer SyncToken)",
    )


def business_validation(detail: str) -> QboFault:
    return QboFault(
        6000,
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
    )


def unsupported_operation(detail: str) -> QboFault:
    return QboFault(500, "Unsupported Operation", f"Operation {detail} is not supported.")


def query_parse_error(detail: str) -> QboFault:
    return QboFault(4000, "Error parsing query", f"QueryParserError: {detail}")


def query_validation_error(detail: str) -> QboFault:
    return QboFault(4001, "Invalid query", f"QueryValidationError: {detail}")
