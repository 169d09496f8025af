"""placeholder"""
def convert_to_fp16(model):
    raise NotImplementedError
