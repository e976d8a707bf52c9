package grpcapi

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// maxName bounds names, keys and ids in requests.
const maxName = 1024

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// checkName checks a name field: required when asked, at most maxName
// bytes.
func checkName(field, v string, required bool) error {
	if v == "" {
		if required {
			return invalid("%s is required", field)
		}
		return nil
	}
	if len(v) > maxName {
		return invalid("%s is %d bytes long; at most %d are allowed", field, len(v), maxName)
	}
	return nil
}

// checkNames checks every element of a list of names.
func checkNames(field string, vs []string) error {
	for i, v := range vs {
		if v == "" {
			return invalid("%s[%d] is empty", field, i)
		}
		if err := checkName(field, v, true); err != nil {
			return err
		}
	}
	return nil
}

// duration converts a Duration field: absent is zero; negative or
// malformed ones are refused.
func duration(field string, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalid("%s: %v", field, err)
	}
	v := d.AsDuration()
	if v < 0 {
		return 0, invalid("%s must not be negative", field)
	}
	return v, nil
}
